using Dapper;
using MassTransit;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Hosting.Http;
using Platform.Hosting.Outbox;

namespace Platform.Storage.Blobs;

/// <summary>
/// Making a pin: receive and hash the bytes, charge a new pin's one-time fee, store the copy, record the pin
/// and this node's copy and announce it (BlobPinned, through the outbox). Blob uploads and dataset manifests
/// both pin this way.
/// </summary>
public sealed class Pinning(BlobStore store, NpgsqlDataSource db, MessageOutbox outbox, IRequestClient<ChargePinFee> pinFees, IOptions<StorageOptions> options,
    TimeProvider clock)
{
    private const string InsertPin = """
        insert into pins (cid, size, sha256, owner, node_id, leaves, merkle_root) values (@Cid, @Size, @Sha256, @Owner, @NodeId, @Leaves, @Root)
        on conflict (cid) do nothing
        """;

    private const string HoldCopy = """
        insert into replicas (cid, node_id, status, verified_at) values (@Cid, @NodeId, 'ok', @Now)
        on conflict (cid, node_id) do update set status = 'ok', verified_at = @Now, repair_failures = 0, retry_at = null
        """;

    /// <summary>The pinned blob, or the problem that stopped it (too large, fee refused, ledger unavailable).</summary>
    public async Task<(StoredBlob? Blob, ProblemHttpResult? Problem)> PinAsync(Stream body, string? owner, CancellationToken ct)
    {
        var max = options.Value.MaxBlobBytes;
        ReceivedBlob received;
        try
        {
            received = await store.ReceiveAsync(body, max, expected: null, ct);
        }
        catch (BlobTooLargeException)
        {
            return (null, BlobsApi.TooLarge(max));
        }
        using var _ = received;
        var blob = received.Blob;

        // A new pin is paid for before it is stored: bytes nobody paid for are never kept.
        if (AccountId.TryParse(owner, null, out var payer) && !await IsPinnedAsync(blob.Cid, ct))
        {
            try
            {
                var fee = await pinFees.GetResponse<PinFeeCharged, PinFeeRefused>(new ChargePinFee { Cid = blob.Cid, Owner = payer, Size = blob.Size }, ct);
                if (fee.Is(out Response<PinFeeRefused>? refused))
                    return (null, Problems.Create(StatusCodes.Status402PaymentRequired, "insufficient-credits", "Not enough credits to pin",
                        $"pinning {blob.Size:N0} bytes costs a one-time fee of {refused.Message.Fee} credits; the account has {refused.Message.Balance}"));
            }
            catch (Exception ex) when (ex is RequestTimeoutException or RequestFaultException)
            {
                // No answer, or the ledger's consumer failed (its database down, say): a 503 the uploader (a node
                // pinning an output, too) retries, not a 500.
                return (null, Problems.Create(StatusCodes.Status503ServiceUnavailable, "upstream-unavailable", "Ledger unavailable",
                    "the pin fee could not be charged because the rewards service did not answer or failed; try again"));
            }
        }
        // The bytes in hand hash to the CID, so they replace whatever copy this node has: an upload of the same
        // bytes repairs a missing or corrupt copy here, even one no peer could repair.
        await store.CommitAsync(received, overwrite: true, ct);

        var now = clock.GetUtcNow();
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var inserted = await connection.ExecuteAsync(new CommandDefinition(InsertPin, new
        {
            Cid = blob.Cid.Value,
            blob.Size,
            blob.Sha256,
            Owner = string.IsNullOrEmpty(owner) ? null : owner,
            options.Value.NodeId,
            blob.Leaves,
            blob.Root,
        }, tx, cancellationToken: ct));
        await connection.ExecuteAsync(new CommandDefinition(HoldCopy, new { Cid = blob.Cid.Value, options.Value.NodeId, Now = now }, tx, cancellationToken: ct));
        if (inserted == 1)
        {
            await outbox.EnqueueAsync(tx, new BlobPinned
            {
                Cid = blob.Cid,
                Size = blob.Size,
                Owner = AccountId.TryParse(owner, null, out var account) ? account : null,
                NodeId = options.Value.NodeId,
                OccurredAt = now,
            }, ct: ct);
        }
        await outbox.CommitAsync(tx, ct);
        return (blob, null);
    }

    private async Task<bool> IsPinnedAsync(Cid cid, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
            "select exists (select 1 from pins where cid = @cid)", new { cid = cid.Value }, cancellationToken: ct));
    }
}
