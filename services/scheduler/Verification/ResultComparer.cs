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
/// (which verifies them against their CIDs) and compared element by element within <see cref="OutputTolerance"/>.
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
            if (cid == other)
                continue;
            var x = await ReadAsync(cid, ct);
            var y = await ReadAsync(other, ct);
            if (x is null || y is null || !OutputTolerance.Agree(x, y))
                return false;
        }
        return true;
    }

    /// <summary>The tensor, or null when the output is not a valid tensor or was never pinned: a result nobody can use.</summary>
    private async Task<NpyArray?> ReadAsync(Cid cid, CancellationToken ct)
    {
        using var response = await storage.GetAsync($"/v1/blobs/{cid}", HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            logger.LogWarning("Output {Cid} is not in storage", cid);
            return null;
        }
        // Anything else (storage down, 5xx) is not the worker's fault: the caller retries the message later.
        response.EnsureSuccessStatusCode();
        // Parsed as it streams in, in chunks, so a tensor is held once (as its elements), not also as a copy of
        // its bytes; the reader bounds sizes before allocating. Comparison needs both tensors whole anyway: the
        // tolerance's scale comes from both before any element is compared.
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        try
        {
            return Npy.Read(body);
        }
        catch (NpyFormatException ex)
        {
            logger.LogWarning("Output {Cid} is not a valid tensor: {Message}", cid, ex.Message);
            return null;
        }
    }
}
