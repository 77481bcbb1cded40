using Platform.Contracts.Api;
using Platform.Contracts.Receipts;

namespace Platform.Client;

public sealed partial class PlatformClient
{
    /// <summary>
    /// The completed job's signed receipt, as the exact bytes the gateway sent: store them as they are and check them
    /// with <see cref="ReceiptVerifier.Verify"/> (any re-encoding breaks the signature). A job that has not
    /// completed, or whose payment is not settled yet, answers 409 (no-receipt, receipt-pending).
    /// </summary>
    [ApiOperation("GET /v1/jobs/{id}/receipt")]
    public async Task<byte[]> GetReceiptAsync(string jobId, CancellationToken ct = default)
    {
        using var response = await _http.GetAsync(new Uri($"v1/jobs/{Escape(jobId)}/receipt", UriKind.Relative), HttpCompletionOption.ResponseHeadersRead, ct);
        await EnsureSuccessAsync(response, ct);
        return await response.Content.ReadAsByteArrayAsync(ct);
    }

    /// <summary>The key the platform signs receipts with, to pin when verifying. Needs no key.</summary>
    [ApiOperation("GET /v1/receipts/key")]
    public Task<ReceiptKeyView> GetReceiptKeyAsync(CancellationToken ct = default) => GetAsync<ReceiptKeyView>("v1/receipts/key", ct);
}
