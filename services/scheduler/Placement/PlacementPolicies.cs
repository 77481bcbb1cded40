namespace Platform.Scheduler.Placement;

public static class PlacementPolicies
{
    public static IReadOnlyList<string> Names { get; } = ["latency", "energy", "cost"];

    public static PlacementPolicy Parse(string name) => name switch
    {
        "energy" => PlacementPolicy.Energy,
        "cost" => PlacementPolicy.Cost,
        _ => PlacementPolicy.Latency,
    };
}
