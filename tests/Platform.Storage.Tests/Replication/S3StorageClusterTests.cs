using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Platform.Contracts;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.Storage.Tests.Replication;

/// <summary>Two storage nodes keeping their copies in one S3 bucket (moto), each under its own prefix.</summary>
public sealed class S3StorageCluster : StorageCluster
{
    public string Bucket { get; } = "platform-" + Guid.NewGuid().ToString("n")[..12];

    public MotoServer Moto { get; private set; } = null!;

    protected override int NodeCount => 2;

    // The scrubber is off, so the corrupted object is found by the read the test makes, not by a scrub before it.
    protected override TimeSpan ScrubPeriod => TimeSpan.FromDays(365);

    protected override async Task<IDictionary<string, string?>> BackendSettingsAsync()
    {
        Moto = await MotoServer.GetAsync();
        var settings = Moto.StorageSettings(Bucket);
        settings["Storage__Backend"] = "s3";
        return settings;
    }

    public AmazonS3Client S3() => new(new BasicAWSCredentials(MotoServer.AccessKey, MotoServer.SecretKey),
        new AmazonS3Config { ServiceURL = Moto.ServiceUrl.ToString(), ForcePathStyle = true, AuthenticationRegion = MotoServer.Region, MaxErrorRetry = 0 });
}

public sealed class S3StorageClusterTests(S3StorageCluster cluster, ITestOutputHelper output) : IClassFixture<S3StorageCluster>
{
    [Fact]
    public async Task Nodes_on_S3_replicate_serve_verified_bytes_and_repair_a_corrupted_object()
    {
        const int seed = 21;
        output.WriteLine($"seed {seed}");
        var bytes = new byte[(2 << 20) + 77];
        new Random(seed).NextBytes(bytes);

        var cid = await cluster.PinAsync(0, bytes);

        await cluster.WaitForReplicasAsync(1, cid, 2);
        using var s3 = cluster.S3();
        var keys = (await s3.ListObjectsV2Async(new ListObjectsV2Request { BucketName = cluster.Bucket })).S3Objects.Select(o => o.Key).Order().ToList();
        Assert.Equal([$"node-1/{cid}", $"node-2/{cid}"], keys);

        var damaged = (byte[])bytes.Clone();
        damaged[12345] ^= 0x80;
        await s3.PutObjectAsync(new PutObjectRequest { BucketName = cluster.Bucket, Key = $"node-2/{cid}", InputStream = new MemoryStream(damaged) });
        using (var http = cluster.Client(1))
            Assert.Equal(bytes, await http.GetByteArrayAsync($"/v1/blobs/{cid}"));

        await Eventually.UntilAsync(async () =>
        {
            using var copy = await s3.GetObjectAsync(cluster.Bucket, $"node-2/{cid}");
            using var read = new MemoryStream();
            await copy.ResponseStream.CopyToAsync(read);
            return Cid.Compute(read.ToArray());
        }, hash => hash == cid, TimeSpan.FromSeconds(60), "node 2's object is repaired");
        // With scrubbing off, only the read can have found the damage and asked for the repair.
        await Eventually.UntilAsync(() => Task.FromResult(cluster.Nodes[1].Log()), log => log.Contains($"Repaired Corrupt copy of {cid}", StringComparison.Ordinal),
            TimeSpan.FromSeconds(10), "the repair logged");
    }
}
