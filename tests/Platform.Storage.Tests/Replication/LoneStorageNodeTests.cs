using System.Net;
using System.Text.Json;
using Platform.Contracts;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.Storage.Tests.Replication;

/// <summary>
/// One storage node with no peers, so nothing can repair a damaged copy from elsewhere, scrubbing slowly (1 MB/s)
/// so that one large blob's re-hash takes seconds: the conditions under which one unrepairable copy used to take
/// all of the scrubber's time.
/// </summary>
public sealed class LoneStorageNode : StorageCluster
{
    protected override int NodeCount => 1;

    protected override long ScrubBytesPerSecond => 1_000_000;
}

/// <summary>Healing without peers: backoff and fair order in the scrubber, and repair by uploading the same bytes.</summary>
public sealed class LoneStorageNodeTests(LoneStorageNode node, ITestOutputHelper output) : IClassFixture<LoneStorageNode>
{
    private async Task<(Cid Cid, byte[] Bytes)> PinAndDamageAsync(int size, int seed)
    {
        var bytes = SeededData.Bytes(size, seed, output);
        var cid = await node.PinAsync(0, bytes);
        var path = node.CopyPath(0, cid);
        var copy = await File.ReadAllBytesAsync(path);
        copy[size / 2] ^= 0x01;
        await File.WriteAllBytesAsync(path, copy);
        return (cid, bytes);
    }

    private async Task<JsonElement> CopyAsync(Cid cid) => (await node.PinStatusAsync(0, cid)).GetProperty("copies").EnumerateArray().Single();

    private static int Failures(JsonElement copy) => copy.GetProperty("repairFailures").GetInt32();

    [Fact]
    public async Task A_copy_no_peer_can_repair_is_retried_with_backoff_and_every_other_copy_is_still_checked()
    {
        // Four seconds of re-hashing at the scrub rate each time the scrubber looks at it.
        var (large, _) = await PinAndDamageAsync(4 << 20, seed: 31);
        await Eventually.UntilAsync(() => CopyAsync(large), c => Failures(c) >= 1, TimeSpan.FromSeconds(60), "the large copy's first failed repair");

        var (small, _) = await PinAndDamageAsync(100_000, seed: 32);
        var found = await Eventually.UntilAsync(() => CopyAsync(small), c => c.GetProperty("status").GetString() == "lost", TimeSpan.FromSeconds(60),
            "the scrubber gets to the small copy while the large one stays unrepairable");
        output.WriteLine($"small copy found damaged: {found}");
        Assert.Equal("lost", (await CopyAsync(large)).GetProperty("status").GetString());

        // Each failure doubles the wait from one heartbeat (0.5 s): after the third failure the next try is at least 2 s
        // (0.5 s x 2^2) after that failure was recorded. The failure was recorded after the last poll that did not see it
        // began, so the next try is at least that long after that poll's start, however late the poll that saw it ran.
        var seen = 0;
        var notYetSeenAt = DateTimeOffset.MinValue;
        var (copy, _) = await Eventually.UntilAsync(async () =>
        {
            var started = DateTimeOffset.UtcNow;
            return (Copy: await CopyAsync(large), Started: started);
        }, observed =>
        {
            var failures = Failures(observed.Copy);
            var transition = failures >= 3 && failures > seen && seen > 0;
            if (!transition)
                notYetSeenAt = observed.Started;
            seen = Math.Max(seen, failures);
            return transition;
        }, TimeSpan.FromSeconds(90), "a third failure of the large copy's repair, seen as it is recorded");
        var count = Failures(copy);
        var wait = copy.GetProperty("retryAt").GetDateTimeOffset() - notYetSeenAt;
        output.WriteLine($"after {count} failures the next try is {wait.TotalSeconds:F2} s after the last poll that had not seen the failure began");
        // Less 0.5 s: the service takes the failure's time a moment before it commits, and a poll can read in between.
        Assert.True(wait >= TimeSpan.FromSeconds((0.5 * Math.Pow(2, count - 1)) - 0.5), $"after {count} failures the next try is only {wait} after it");
    }

    [Fact]
    public async Task An_upload_of_the_same_bytes_repairs_a_copy_no_peer_could_and_clears_its_failures()
    {
        var (cid, bytes) = await PinAndDamageAsync(300_000, seed: 33);
        using var http = node.Client(0);
        // The read finds the damage, has no peer to ask, and refuses to serve it.
        using (var read = await http.GetAsync(new Uri($"/v1/blobs/{cid}", UriKind.Relative), HttpCompletionOption.ResponseHeadersRead))
        {
            var whole = await ReadOrFailAsync(read);
            Assert.False(whole is not null && whole.AsSpan().SequenceEqual(bytes), "damaged bytes were served as the blob");
        }
        await Eventually.UntilAsync(() => CopyAsync(cid), c => Failures(c) >= 1, TimeSpan.FromSeconds(60), "the failed repair recorded");

        Assert.Equal(cid, await node.PinAsync(0, bytes));

        Assert.Equal(bytes, await File.ReadAllBytesAsync(node.CopyPath(0, cid)));
        var copy = await CopyAsync(cid);
        Assert.Equal("ok", copy.GetProperty("status").GetString());
        Assert.Equal(0, Failures(copy));
        Assert.Equal(JsonValueKind.Null, copy.GetProperty("retryAt").ValueKind);
        Assert.Equal(bytes, await http.GetByteArrayAsync(new Uri($"/v1/blobs/{cid}", UriKind.Relative)));
    }

    // A damaged chunk found mid-response aborts the response (headers may already be sent): the bytes or null.
    private static async Task<byte[]?> ReadOrFailAsync(HttpResponseMessage response)
    {
        if (response.StatusCode != HttpStatusCode.OK)
            return null;
        try
        {
            return await response.Content.ReadAsByteArrayAsync();
        }
        catch (HttpRequestException)
        {
            return null;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
