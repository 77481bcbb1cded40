using Platform.Bench;

// ./platform bench [matching|compute|e2e|storage|ledger|node|load]... : each benchmark prints its figures beside a baseline measured in the same run.
// load takes minutes (10,000 jobs), so it runs only when named.
var which = args.Length == 0 ? ["matching", "compute", "e2e", "storage", "ledger", "node"] : args;
foreach (var name in which)
{
    switch (name)
    {
        case "matching":
            MatchingBenchmark.Run();
            break;
        case "compute":
            ComputeBenchmark.Run();
            break;
        case "e2e":
            await EndToEndBenchmark.RunAsync();
            break;
        case "storage":
            await StorageBenchmark.RunAsync();
            break;
        case "ledger":
            await LedgerBenchmark.RunAsync();
            break;
        case "load":
            await LoadBenchmark.RunAsync();
            break;
        case "node":
            await NodeMemoryBenchmark.RunAsync();
            break;
        default:
            Console.Error.WriteLine($"unknown benchmark '{name}': choose matching, compute, e2e, storage, ledger, node or load");
            return 2;
    }
}
return 0;
