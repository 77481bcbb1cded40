using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Merkle;
using Platform.Storage.Blobs;

namespace Platform.Storage.Replication;

/// <summary>A storage node that holds a verified copy of some blob, and where to reach it.</summary>
public sealed record Peer(string NodeId, Uri Url);

/// <summary>
/// The other storage nodes: which of them hold a copy of a blob, and fetching chunks or whole copies from
/// them. Peers serve through the same verified read path as clients, and what they send is verified again
/// here, so a damaged peer cannot spread damage.
/// </summary>
public sealed class Peers(NpgsqlDataSource db, IHttpClientFactory http, IOptions<StorageOptions> options, TimeProvider clock)
{
    /// <summary>Set on requests between nodes, so a node asked for a chunk never asks its peers in turn.</summary>
    public const string PeerHeader = "X-Platform-Storage-Peer";

    public const string HttpClientName = "storage-peers";

    /// <summary>Live peers (seen within three heartbeats) holding a verified copy, most recently seen first.</summary>
    public async Task<IReadOnlyList<Peer>> HoldersAsync(Cid cid, CancellationToken ct)
    {
        var o = options.Value;
        await using var connection = await db.OpenConnectionAsync(ct);
        var rows = await connection.QueryAsync<(string NodeId, string Url)>(new CommandDefinition(
            """
            select n.node_id, n.url from replicas r join storage_nodes n on n.node_id = r.node_id
            where r.cid = @cid and r.status = 'ok' and n.node_id <> @self and n.last_seen_at > @alive
            order by n.last_seen_at desc
            """,
            new { cid = cid.Value, self = o.NodeId, alive = clock.GetUtcNow() - (3 * o.HeartbeatInterval) }, cancellationToken: ct));
        return rows.Select(r => new Peer(r.NodeId, new Uri(r.Url))).ToList();
    }

    /// <summary>
    /// One chunk of a blob from the first of <paramref name="holders"/> that sends it; null when none can. The
    /// caller looks the holders up once per read, not once per chunk.
    /// </summary>
    public async Task<byte[]?> FetchChunkAsync(IReadOnlyList<Peer> holders, Cid cid, long size, int index, CancellationToken ct)
    {
        var start = (long)index * MerkleTree.ChunkSize;
        var end = Math.Min(size, start + MerkleTree.ChunkSize) - 1;
        foreach (var peer in holders)
        {
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(peer.Url, $"v1/blobs/{cid}"));
                request.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(start, end);
                request.Headers.Add(PeerHeader, options.Value.NodeId);
                using var response = await http.CreateClient(HttpClientName).SendAsync(request, ct);
                if (response.IsSuccessStatusCode)
                    return await response.Content.ReadAsByteArrayAsync(ct);
            }
            catch (HttpRequestException)
            {
                // That peer is down or cut off mid-way: try the next.
            }
        }
        return null;
    }

    /// <summary>
    /// Streams a whole copy from the first peer that can send it into <paramref name="store"/> (verified
    /// against the CID there). Returns the peer's node id, or null when no peer could.
    /// </summary>
    public async Task<string?> CopyFromPeerAsync(BlobStore store, Cid cid, bool overwrite, CancellationToken ct)
    {
        foreach (var peer in await HoldersAsync(cid, ct))
        {
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(peer.Url, $"v1/blobs/{cid}"));
                request.Headers.Add(PeerHeader, options.Value.NodeId);
                using var response = await http.CreateClient(HttpClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
                if (!response.IsSuccessStatusCode)
                    continue;
                await using var body = await response.Content.ReadAsStreamAsync(ct);
                await store.PutCopyAsync(cid, body, options.Value.MaxBlobBytes, overwrite, ct);
                return peer.NodeId;
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or CorruptBlobException)
            {
                // Down, cut off, or (impossible unless a peer is broken) wrong bytes: try the next.
            }
        }
        return null;
    }
}
