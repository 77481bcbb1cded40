namespace Platform.Contracts.Messages;

/// <summary>What a client asked for, as accepted by the gateway. Carried by the messages that need the whole spec.</summary>
public sealed record JobSpec
{
    public required string Kernel { get; init; }
    public required IReadOnlyDictionary<string, Cid> Inputs { get; init; }
    public IReadOnlyDictionary<string, string> Params { get; init; } = new Dictionary<string, string>();
    public int Replicas { get; init; } = 1;
    public decimal? MaxPrice { get; init; }
    public JobRequirements Requirements { get; init; } = new();
    /// <summary>Higher runs first among the client's jobs and across clients of equal share; -10..10.</summary>
    public int Priority { get; init; }
    /// <summary>latency (default), energy or cost; null means the deployment's default.</summary>
    public string? Policy { get; init; }
}

public sealed record JobRequirements
{
    /// <summary>any, cpu or gpu.</summary>
    public string Device { get; init; } = "any";
    public long MinMemoryMb { get; init; }
    public string? Region { get; init; }
}
