using System.Net.Http.Headers;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using Platform.Client;
using Platform.Contracts.Api;
using Platform.Contracts.Tensors;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.Cli.Tests;

/// <summary>
/// What the server actually answers reads into the types the SDK declares, strictly: no member the type lacks,
/// every required one present, no null where the type says there is none. Every GET of the SDK that answers JSON
/// is called on a real network with something to show (a completed job, a batch, a dataset, a node key), so the
/// forwarded answers of the storage, rewards and scheduler services are held to the contract types as much as the
/// gateway's own. (The OpenAPI side is tests/Platform.Gateway.Tests/Documentation/SdkAgreementTests.cs.)
/// </summary>
public sealed class SdkAgainstTheServerTests(CliNetwork network, ITestOutputHelper output) : IClassFixture<CliNetwork>
{
    private static readonly JsonSerializerOptions Strict = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    [Fact]
    public async Task Every_json_answer_of_every_sdk_get_reads_strictly_into_the_type_the_sdk_declares()
    {
        var client = await network.CreateAccountAsync("client", 100m);
        using var sdk = network.Client(client.Key);
        var pinned = await sdk.PutBlobAsync(new MemoryStream(Npy.ToBytes(NpyArray.FromFloat32([1f, 2f, 3f], 3))));
        var job = await sdk.SubmitJobAsync(new SubmitJobRequest { Kernel = "vector-add", Inputs = new() { ["a"] = pinned.Cid, ["b"] = pinned.Cid } });
        await Eventually.UntilAsync(async () => (await sdk.GetJobAsync(job.Id)) is { Status: "completed", Cost: not null }, TimeSpan.FromSeconds(120),
            "the job to complete and be paid for");
        var batch = await sdk.SubmitJobsAsync([new SubmitJobRequest { Kernel = "vector-add", Inputs = new() { ["a"] = pinned.Cid, ["b"] = pinned.Cid } }]);
        var dataset = await sdk.CreateDatasetAsync(new CreateDatasetRequest("d", null, "MIT", [pinned.Cid]));
        await sdk.SetWebhookAsync("https://93.184.215.14/hooks/platform");
        using (var operatorSdk = network.Client(network.Operator.Key))
            await operatorSdk.CreateNodeKeyAsync();
        var worker = (await sdk.GetWorkersAsync()).First().WorkerId;
        // The history answers hold samples (one a second on this network), so their items are read too.
        await Eventually.UntilAsync(async () => (await sdk.GetNetworkHistoryAsync()).Samples.Count > 0 && (await sdk.GetWorkerHistoryAsync(worker)).Samples.Count > 0,
            TimeSpan.FromSeconds(30), "the scheduler's first samples");

        // Each GET of the SDK with a concrete path, and whose key asks.
        var calls = new Dictionary<string, (string Path, string Key)>
        {
            ["GET /v1/account"] = ("/v1/account", client.Key),
            ["GET /v1/account/ledger"] = ("/v1/account/ledger", client.Key),
            ["GET /v1/account/spending"] = ("/v1/account/spending", client.Key),
            ["GET /v1/account/earnings"] = ("/v1/account/earnings", network.Operator.Key),
            ["GET /v1/account/node-keys"] = ("/v1/account/node-keys", network.Operator.Key),
            ["GET /v1/account/webhook"] = ("/v1/account/webhook", client.Key),
            ["GET /v1/jobs"] = ("/v1/jobs", client.Key),
            ["GET /v1/jobs/{id}"] = ($"/v1/jobs/{job.Id}", client.Key),
            ["GET /v1/batches/{id}"] = ($"/v1/batches/{batch.Id}", client.Key),
            ["GET /v1/receipts/key"] = ("/v1/receipts/key", client.Key),
            ["GET /v1/blobs/{cid}/pin"] = ($"/v1/blobs/{pinned.Cid}/pin", client.Key),
            ["GET /v1/blobs/{cid}/proof"] = ($"/v1/blobs/{pinned.Cid}/proof?chunk=0", client.Key),
            ["GET /v1/datasets/{cid}"] = ($"/v1/datasets/{dataset.Cid}", client.Key),
            ["GET /v1/workers"] = ("/v1/workers", client.Key),
            ["GET /v1/workers/{id}/placement"] = ($"/v1/workers/{worker}/placement", client.Key),
            ["GET /v1/workers/{id}/history"] = ($"/v1/workers/{worker}/history", client.Key),
            ["GET /v1/network"] = ("/v1/network", client.Key),
            ["GET /v1/network/history"] = ("/v1/network/history", client.Key),
            ["GET /v1/kernels"] = ("/v1/kernels", client.Key),
        };
        var gets = typeof(PlatformClient).GetMethods()
            .Select(m => (Method: m, Operation: m.GetCustomAttribute<ApiOperationAttribute>()?.Operation))
            .Where(m => m.Operation?.StartsWith("GET ", StringComparison.Ordinal) == true && Json(m.Method.ReturnType) is not null)
            .ToList();
        // A GET the SDK gains must be added here too.
        Assert.Empty(gets.Select(g => g.Operation!).Except(calls.Keys).Order());

        using var http = new HttpClient { BaseAddress = network.Gateway.BaseUrl };
        var failures = new List<string>();
        foreach (var (method, operation) in gets)
        {
            var (path, key) = calls[operation!];
            var type = Json(method.ReturnType)!;
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            using var response = await http.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            if (!response.IsSuccessStatusCode)
            {
                failures.Add($"{operation}: {(int)response.StatusCode} {body}");
                continue;
            }
            try
            {
                Assert.NotNull(JsonSerializer.Deserialize(body, type, Strict));
                output.WriteLine($"{operation}: {type.Name}, {body.Length} bytes");
            }
            catch (JsonException e)
            {
                failures.Add($"{operation} as {type.Name}: {e.Message}\n  {body[..Math.Min(body.Length, 400)]}");
            }
        }
        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    // The JSON type a method's Task<T> reads; null for anything else (streams, bytes, downloads, the SDK's own types).
    private static Type? Json(Type returned) =>
        returned.IsGenericType && returned.GetGenericTypeDefinition() == typeof(Task<>) && returned.GetGenericArguments()[0] is var t
            && (t.Namespace == typeof(JobView).Namespace || t.IsGenericType && t.GetGenericArguments()[0].Namespace == typeof(JobView).Namespace)
            ? t : null;
}
