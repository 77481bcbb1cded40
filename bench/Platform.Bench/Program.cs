using Platform.Bench;

// ./platform bench [matching|compute|e2e]... : each benchmark prints its figures beside a baseline measured in the same run.
var which = args.Length == 0 ? ["matching", "compute", "e2e"] : args;
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
        default:
            Console.Error.WriteLine($"unknown benchmark '{name}': choose matching, compute or e2e");
            return 2;
    }
}
return 0;
