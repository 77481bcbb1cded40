using System.Net.Http.Json;
using System.Text.Json;
using Platform.Contracts;
using Platform.Testing;

namespace Platform.Storage.Tests.Replication;

/// <summary>
/// Three storage nodes as real processes sharing one database and broker, each with its own volume, keeping
/// two copies of every pin. Beats and sweeps run every half second, and scrubs every second, so the tests see them soon.
/// </summary>
public class StorageCluster : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "platform-storage-cluster-" + Guid.NewGuid().ToString("n"));

    public TestEnvironment Environment { get; private set; } = null!;
    public List<ServiceProcess> Nodes { get; } = [];

    /// <summary>How many storage nodes the cluster runs.</summary>
    protected virtual int NodeCount => 3;

    /// <summary>
    /// How long a verified copy goes before its node's scrubber re-hashes it: a second here, so tests see scrubs
    /// soon; a year turns the scrubber's own checks off, so only a read can find a damaged copy.
    /// </summary>
    protected virtual TimeSpan ScrubPeriod => TimeSpan.FromSeconds(1);

    /// <summary>Bytes per second each node's scrubber may re-hash.</summary>
    protected virtual long ScrubBytesPerSecond => 1_000_000_000;

    /// <summary>Settings that choose and configure the nodes' backend; none means the filesystem.</summary>
    protected virtual Task<IDictionary<string, string?>> BackendSettingsAsync() => Task.FromResult<IDictionary<string, string?>>(new Dictionary<string, string?>());

    public async Task InitializeAsync()
    {
        Environment = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("storage-cluster");
        var backend = await BackendSettingsAsync();
        for (var i = 1; i <= NodeCount; i++)
        {
            Nodes.Add(await ServiceProcess.StartAsync("storage", Environment, new Dictionary<string, string?>(backend)
            {
                ["Storage__NodeId"] = NodeId(i - 1),
                ["Storage__RootPath"] = Path.Combine(_root, NodeId(i - 1)),
                ["Storage__ReplicaCount"] = "2",
                ["Storage__HeartbeatInterval"] = "00:00:00.500",
                ["Storage__ScrubPeriod"] = ScrubPeriod.ToString("c", System.Globalization.CultureInfo.InvariantCulture),
                ["Storage__ScrubBytesPerSecond"] = ScrubBytesPerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture),
            }));
        }
    }

    public static string NodeId(int index) => $"node-{index + 1}";

    public string CopyPath(int node, Cid cid) => Path.Combine(_root, NodeId(node), "blobs", cid.Value[^2..], cid.Value);

    public HttpClient Client(int node) => new() { BaseAddress = Nodes[node].BaseUrl };

    public async Task<Cid> PinAsync(int node, byte[] bytes)
    {
        using var http = Client(node);
        using var response = await http.PostAsync(new Uri("/v1/blobs", UriKind.Relative), new ByteArrayContent(bytes));
        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
        return Cid.Parse((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("cid").GetString()!);
    }

    public async Task<JsonElement> PinStatusAsync(int node, Cid cid)
    {
        using var http = Client(node);
        return await http.GetFromJsonAsync<JsonElement>($"/v1/blobs/{cid}/pin");
    }

    /// <summary>The nodes holding a verified copy, once at least <paramref name="count"/> do.</summary>
    public async Task<List<string>> WaitForReplicasAsync(int askNode, Cid cid, int count)
    {
        var status = await Eventually.UntilAsync(() => PinStatusAsync(askNode, cid), s => s.GetProperty("replicas").GetArrayLength() >= count,
            TimeSpan.FromSeconds(60), $"{count} copies of {cid}");
        return [.. status.GetProperty("replicas").EnumerateArray().Select(r => r.GetString()!)];
    }

    public Task DisposeAsync() => Teardown.StopAsync(Nodes, Environment, _root);
}
