using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Contracts;
using Platform.Contracts.Receipts;
using Platform.Contracts.Tensors;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>A two-replica job's receipt, across real processes: fetched from the gateway, checked offline, then tampered with.</summary>
public sealed class ReceiptTests(Network network, ITestOutputHelper output) : IClassFixture<Network>
{
    private sealed record ReceiptKey(string PublicKey, string Fingerprint, string Algorithm);

    [Fact]
    public async Task A_two_replica_jobs_receipt_verifies_offline_and_fails_once_a_byte_is_changed()
    {
        const int seed = 73;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        // Replicas come from different operators: a second one's worker beside the network's.
        var second = await network.CreateOperatorAsync();
        await network.StartWorkerAsync(second.Key);
        var client = await network.CreateAccountAsync("client", 100m);
        using var http = network.Client(client.Key);
        var a = Api.RandomFloats(random, 256);
        var b = Api.RandomFloats(random, 256);
        var inputA = await http.PinAsync(NpyArray.FromFloat32(a, a.Length));
        var inputB = await http.PinAsync(NpyArray.FromFloat32(b, b.Length));

        using var submitted = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = inputA.Cid, b = inputB.Cid }, replicas = 2 });
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        var done = await http.WaitForAsync(job.Id, j => j.Status is "failed" or "rejected" or "cancelled" || j.Status == "completed" && j.Cost is not null, "job completed and settled");
        Assert.Equal("completed", done.Status);

        var file = await Eventually.UntilAsync(async () =>
        {
            using var response = await http.GetAsync(new Uri($"/v1/jobs/{job.Id}/receipt", UriKind.Relative));
            return response.StatusCode == HttpStatusCode.OK ? await response.Content.ReadAsByteArrayAsync() : null;
        }, bytes => bytes is not null, TimeSpan.FromSeconds(30), "the receipt issued");
        var path = Path.Combine(Path.GetTempPath(), $"{job.Id}.receipt.json");
        await File.WriteAllBytesAsync(path, file!);
        try
        {
            output.WriteLine(await File.ReadAllTextAsync(path));
            // The platform key pinned from the gateway, the output downloaded and hashed here: nothing else is trusted.
            using var anonymous = network.Client(null);
            var key = (await anonymous.GetFromJsonAsync<ReceiptKey>("/v1/receipts/key"))!;
            using var result = await http.GetAsync(new Uri($"/v1/blobs/{done.Outputs!["c"]}", UriKind.Relative));
            var local = Cid.Compute(await result.Content.ReadAsByteArrayAsync());
            var onDisk = await File.ReadAllBytesAsync(path);

            var verified = ReceiptVerifier.Verify(onDisk, key.PublicKey, new Dictionary<string, Cid> { ["c"] = local });
            foreach (var check in verified.Checks)
                output.WriteLine($"{(check.Passed ? "ok  " : "FAIL")}  {check.Name}: {check.Detail}");
            Assert.True(verified.Verified);
            var receipt = verified.Receipt!.Receipt;
            Assert.Equal(2, receipt.Replicas);
            Assert.Equal(2, receipt.Attempts.Count);
            Assert.Equal(done.Outputs["c"], receipt.Outputs["c"].Value);
            Assert.Equal(done.Cost, receipt.Cost);

            // The worker keys are the ones the network lists for those workers.
            var listed = (await anonymous.GetFromJsonAsync<JsonElement>("/v1/workers")).EnumerateArray()
                .ToDictionary(w => w.GetProperty("workerId").GetString()!, w => w.GetProperty("publicKey").GetString());
            Assert.All(receipt.Attempts, attempt => Assert.Equal(listed[attempt.WorkerId], attempt.WorkerPublicKey));

            // One byte in the middle of the receipt's outputs, changed on disk.
            var tampered = (byte[])onDisk.Clone();
            var at = new ReadOnlySpan<byte>(tampered).IndexOf(System.Text.Encoding.UTF8.GetBytes(receipt.Outputs["c"].Value)) + 30;
            tampered[at] = tampered[at] == (byte)'a' ? (byte)'b' : (byte)'a';
            await File.WriteAllBytesAsync(path, tampered);
            var failed = ReceiptVerifier.Verify(await File.ReadAllBytesAsync(path), key.PublicKey);
            foreach (var check in failed.Failures)
                output.WriteLine($"FAIL  {check.Name}: {check.Detail}");
            Assert.False(failed.Verified);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
