using Platform.Contracts;
using Platform.Contracts.Tensors;

namespace Platform.Worker.Node;

/// <summary>
/// The outputs this node has had pinned. Pins are permanent and a CID names its bytes, so pinning the same output
/// again (a small job run many times gives the same bytes every time) would only repeat a round trip through the
/// gateway and storage. Only a CID storage answered with, equal to the one computed here, is remembered. Bounded:
/// past the limit it starts again, which costs a re-pin, never a missing blob.
/// </summary>
public sealed class PinnedOutputs
{
    private const int Capacity = 100_000;
    private readonly HashSet<Cid> _pinned = [];

    public async Task<Cid> PinAsync(GatewayClient gateway, NpyArray tensor, CancellationToken ct)
    {
        // Only small outputs repeat in practice (the same tiny job again); hashing a large one here as well as in
        // storage would cost more than the rare repeat saves. A large one is streamed, never built as one array.
        if (Npy.ByteLength(tensor) > InputCache.SmallInputBytes)
            return await gateway.PutTensorAsync(tensor, ct);
        var bytes = Npy.ToBytes(tensor);
        var cid = Cid.Compute(bytes);
        lock (_pinned)
        {
            if (_pinned.Contains(cid))
                return cid;
        }
        var answered = await gateway.PutBlobAsync(bytes, ct);
        if (answered == cid)
        {
            lock (_pinned)
            {
                if (_pinned.Count >= Capacity)
                    _pinned.Clear();
                _pinned.Add(cid);
            }
        }
        return answered;
    }
}
