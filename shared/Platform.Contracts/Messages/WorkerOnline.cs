namespace Platform.Contracts.Messages;

/// <summary>A worker started (or restarted) and offers its capacity.</summary>
public sealed record WorkerOnline
{
    public required WorkerId WorkerId { get; init; }
    public required AccountId OperatorAccountId { get; init; }
    public required string Region { get; init; }
    public required int Slots { get; init; }
    public required IReadOnlyList<string> Kernels { get; init; }
    public required IReadOnlyList<DeviceInfo> Devices { get; init; }
    /// <summary>Measured GFLOP/s per kernel, used to estimate run time.</summary>
    public required IReadOnlyDictionary<string, double> GflopsPerKernel { get; init; }
    /// <summary>Which backend (simd, opencl, ilgpu) runs each kernel: the one that calibrated fastest.</summary>
    public IReadOnlyDictionary<string, string>? BackendPerKernel { get; init; }
    /// <summary>What calibration measured on every backend the node opened, backend → kernel → GFLOP/s (BackendPerKernel picks the fastest).</summary>
    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, double>>? GflopsPerBackend { get; init; }
    public required double PowerWatts { get; init; }
    /// <summary>True when <see cref="PowerWatts"/> comes from a power sensor, false when it is an estimate.</summary>
    public bool PowerMeasured { get; init; }
    /// <summary>What the node wants its operator to know about its capabilities, e.g. why OpenCL is not used.</summary>
    public IReadOnlyList<string>? Notes { get; init; }
    /// <summary>
    /// The revision of the kernels' arithmetic the node computes (<see cref="Kernels.KernelArithmetic"/>); null for
    /// nodes older than the bitwise-reproducible kernels, whose results are compared within a tolerance.
    /// </summary>
    public int? KernelRevision { get; init; }
    /// <summary>Identity key (SubjectPublicKeyInfo, base64) that results are signed with.</summary>
    public string? PublicKey { get; init; }
    /// <summary>Proof of possession: <see cref="Signing.WorkerMessageSignature"/> over this announcement, made with the key in <see cref="PublicKey"/>.</summary>
    public string? Signature { get; init; }
    public required DateTimeOffset OccurredAt { get; init; }
}

public sealed record DeviceInfo
{
    /// <summary>cpu or gpu.</summary>
    public required string Kind { get; init; }
    public required string Name { get; init; }
    public required string Backend { get; init; }
    public required long MemoryMb { get; init; }
}
