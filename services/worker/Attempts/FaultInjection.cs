using Platform.Contracts.Tensors;

namespace Platform.Worker.Attempts;

/// <summary>Wrong results on purpose (Worker:Faults:CorruptOutputs), so tests can plant a cheater in a real network.</summary>
public static class FaultInjection
{
    public static IReadOnlyDictionary<string, NpyArray> Corrupt(IReadOnlyDictionary<string, NpyArray> results) =>
        results.ToDictionary(r => r.Key, r => r.Value.Float32 is { } floats
            ? NpyArray.FromFloat32([.. floats.Select(x => x + 1f)], r.Value.Shape)
            : NpyArray.FromInt32([.. r.Value.Int32!.Select(x => x + 1)], r.Value.Shape));
}
