using Platform.Bench;

// ./platform bench [matching|compute|e2e|storage|ledger]... : each benchmark prints its figures beside a baseline measured in the same run.
var which = args.Length == 0 ? ["matching", "compute", "e2e", "storage", "ledger"] : args;
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
        default:
            Console.Error.WriteLine($"unknown benchmark '{name}': choose matching, compute, e2e, storage or ledger");
            return 2;
    }
}
return 0;
