using System.Buffers;
using System.Globalization;
using System.Net;
using Platform.Contracts;
using Platform.Contracts.Kernels;
using Platform.Contracts.Tensors;

namespace Platform.Scheduler.Verification;

/// <summary>
/// Compares two attempts' outputs. When both attempts were assigned to workers at the same reproducible kernel
/// revision (<see cref="KernelArithmetic"/>), every honest backend produces the same bytes, so they agree exactly
/// when every output CID is equal: nothing is read and nothing is tolerated. Otherwise (either worker is older, or
/// they compute different revisions) identical CIDs still agree at once, and different ones are read from storage
/// (which verifies them against their CIDs) and compared element by element within <see cref="OutputTolerance"/>,
/// streamed side by side a piece at a time, so no tensor is ever held whole.
/// <para>
/// The revision is the node's own claim, and that is enough: claiming none (or another revision than the other
/// node's) gets the tolerance every result had before; claiming the reproducible revision makes only comparisons with
/// nodes that claim it too exact, so a node can make its own results stricter but never looser, and an honest node
/// at that revision computes the same bytes as any other honest one. The revision is the one its worker announced
/// when the attempt was assigned (attempts.kernel_revision), so announcing another mid-attempt changes nothing.
/// </para>
/// </summary>
public sealed class ResultComparer(HttpClient storage, ILogger<ResultComparer> logger)
{
    /// <summary>One attempt's result as compared: its outputs and the kernel revision it was assigned under.</summary>
    public sealed record Outputs(string AttemptId, int? KernelRevision, IReadOnlyDictionary<string, Cid> Cids);

    /// <summary>True when two attempts at these revisions must produce identical bytes: the same reproducible revision.</summary>
    public static bool ByEquality(int? a, int? b) => a is >= KernelArithmetic.Reproducible && a == b;

    public async Task<bool> AgreeAsync(JobId job, Outputs a, Outputs b, CancellationToken ct)
    {
        if (a.Cids.Count != b.Cids.Count || a.Cids.Keys.Any(name => !b.Cids.ContainsKey(name)))
            return false;
        if (ByEquality(a.KernelRevision, b.KernelRevision))
        {
            var equal = a.Cids.All(output => output.Value == b.Cids[output.Key]);
            logger.LogInformation("Job {JobId}: attempts {AttemptA} and {AttemptB} compared by output CID (kernel revision {Revision}): {Verdict}",
                job, a.AttemptId, b.AttemptId, a.KernelRevision, equal ? "equal" : "different");
            return equal;
        }
        logger.LogInformation("Job {JobId}: attempts {AttemptA} and {AttemptB} compared within the tolerance (kernel revisions {RevisionA} and {RevisionB})",
            job, a.AttemptId, b.AttemptId, a.KernelRevision?.ToString(CultureInfo.InvariantCulture) ?? "none", b.KernelRevision?.ToString(CultureInfo.InvariantCulture) ?? "none");
        foreach (var (name, cid) in a.Cids)
        {
            var other = b.Cids[name];
            if (cid != other && !await StreamedAgreeAsync(cid, other, ct))
                return false;
        }
        return true;
    }

    // Each side is read this much at a time; a comparison holds two such pieces, never a whole tensor.
    private const int PieceBytes = 1 << 20;

    /// <summary>
    /// Reads both outputs side by side, a piece of each at a time, through <see cref="OutputTolerance.Comparison"/>:
    /// memory stays at two pieces however large the tensors. False as soon as the answer is known: a header, dtype or
    /// shape that differs, a non-finite mismatch, too many differing labels, or a body that is not a valid tensor or was
    /// never pinned (a result nobody can use).
    /// </summary>
    private async Task<bool> StreamedAgreeAsync(Cid a, Cid b, CancellationToken ct)
    {
        using var responseA = await OpenAsync(a, ct);
        using var responseB = await OpenAsync(b, ct);
        if (responseA is null || responseB is null)
            return false;
        await using var x = await responseA.Content.ReadAsStreamAsync(ct);
        await using var y = await responseB.Content.ReadAsStreamAsync(ct);
        NpyHeader hx, hy;
        try
        {
            hx = Npy.ReadHeader(x);
            hy = Npy.ReadHeader(y);
        }
        catch (NpyFormatException ex)
        {
            logger.LogWarning("Output {CidA} or {CidB} is not a valid tensor: {Message}", a, b, ex.Message);
            return false;
        }
        if (hx.DType != hy.DType || !hx.Shape.AsSpan().SequenceEqual(hy.Shape))
            return false;

        var comparison = new OutputTolerance.Comparison(hx.DType, hx.ElementCount);
        var pieceX = ArrayPool<byte>.Shared.Rent(PieceBytes);
        var pieceY = ArrayPool<byte>.Shared.Rent(PieceBytes);
        try
        {
            for (var left = hx.DataLength; left > 0;)
            {
                var want = (int)Math.Min(left, PieceBytes);
                var readX = x.ReadAtLeastAsync(pieceX.AsMemory(0, want), want, throwOnEndOfStream: false, ct);
                var gotY = await y.ReadAtLeastAsync(pieceY.AsMemory(0, want), want, throwOnEndOfStream: false, ct);
                var gotX = await readX;
                if (gotX < want || gotY < want)
                {
                    logger.LogWarning("Output {CidA} or {CidB} is not a valid tensor: its data ends before the header's shape does", a, b);
                    return false;
                }
                comparison.Add(pieceX.AsSpan(0, want), pieceY.AsSpan(0, want));
                if (comparison.Disagrees)
                    return false;
                left -= want;
            }
            if (await x.ReadAsync(pieceX.AsMemory(0, 1), ct) != 0 || await y.ReadAsync(pieceY.AsMemory(0, 1), ct) != 0)
            {
                logger.LogWarning("Output {CidA} or {CidB} is not a valid tensor: trailing bytes after its data", a, b);
                return false;
            }
            return comparison.Agree;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(pieceX);
            ArrayPool<byte>.Shared.Return(pieceY);
        }
    }

    /// <summary>The output's response, headers read, or null when it was never pinned.</summary>
    private async Task<HttpResponseMessage?> OpenAsync(Cid cid, CancellationToken ct)
    {
        var response = await storage.GetAsync($"/v1/blobs/{cid}", HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            logger.LogWarning("Output {Cid} is not in storage", cid);
            response.Dispose();
            return null;
        }
        // Anything else (storage down, 5xx) is not the worker's fault: the caller retries the message later.
        if (!response.IsSuccessStatusCode)
        {
            using (response)
                response.EnsureSuccessStatusCode();
        }
        return response;
    }
}
