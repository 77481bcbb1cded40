using System.Net;
using Platform.Contracts;
using Platform.Contracts.Tensors;

namespace Platform.Scheduler.Verification;

/// <summary>
/// Compares two attempts' outputs: identical CIDs agree at once (the usual case: the same backend gives the
/// same bytes); otherwise both tensors are read from storage (which verifies them against their CIDs) and
/// compared element by element within <see cref="OutputTolerance"/>.
/// </summary>
public sealed class ResultComparer(HttpClient storage, ILogger<ResultComparer> logger)
{
    public async Task<bool> AgreeAsync(IReadOnlyDictionary<string, Cid> a, IReadOnlyDictionary<string, Cid> b, CancellationToken ct)
    {
        if (a.Count != b.Count || a.Keys.Any(name => !b.ContainsKey(name)))
            return false;
        foreach (var (name, cid) in a)
        {
            var other = b[name];
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
