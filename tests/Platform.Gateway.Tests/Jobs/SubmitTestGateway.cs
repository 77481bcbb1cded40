using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts.Api;
using Platform.Contracts.Tensors;
using Platform.Gateway.Forwarding;
using Platform.Testing;

namespace Platform.Gateway.Tests.Jobs;

/// <summary>
/// What job submission needs: storage as a real process and the gateway in process in front of it, with every request
/// the gateway itself sends to storage (<see cref="StorageClient"/>, the .npy header reads) counted on its way out.
/// </summary>
public sealed class SubmitTestGateway : IAsyncLifetime
{
    private readonly string _root = Directory.CreateTempSubdirectory("gateway-submit-").FullName;

    public TestEnvironment Environment { get; private set; } = null!;
    public ServiceProcess Storage { get; private set; } = null!;
    public WebApplicationFactory<Program> Gateway { get; private set; } = null!;
    public StorageRequests StorageRequests { get; } = new();

    public async Task InitializeAsync()
    {
        Environment = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("gateway-submit");
        Storage = await ServiceProcess.StartAsync("storage", Environment, new Dictionary<string, string?>
        {
            ["Storage__RootPath"] = _root,
            ["Storage__NodeId"] = "storage-1",
        });
        Gateway = InProcessGateway.Start(Environment, new Dictionary<string, string>
        {
            ["Upstreams:Storage"] = Storage.BaseUrl.ToString(),
            ["Limits:ClientPerSecond"] = "100000",
            ["Limits:ClientBurst"] = "100000",
            // Single jobs posted at once are written together however fast the machine answers them.
            ["Submissions:GroupWait"] = "00:00:00.1",
        }, services => services.AddHttpClient<StorageClient>().AddHttpMessageHandler(() => new CountingHandler(StorageRequests)));
    }

    /// <summary>A client of the gateway with a new client account's key.</summary>
    public async Task<HttpClient> ClientAsync()
    {
        var key = await Gateway.KeyForNewAccountAsync("client");
        var http = Gateway.CreateClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    /// <summary>Pins a float32 vector straight at storage (unowned, so free) and returns its CID.</summary>
    public Task<string> PinVectorAsync(float[] values) => PinAsync(Vector(values));

    /// <summary>A float32 vector as a .npy file.</summary>
    public static byte[] Vector(float[] values) => Npy.ToBytes(NpyArray.FromFloat32(values, values.Length));

    /// <summary>Pins <paramref name="bytes"/> straight at storage (unowned, so free) and returns its CID.</summary>
    public async Task<string> PinAsync(byte[] bytes)
    {
        using var http = new HttpClient { BaseAddress = Storage.BaseUrl };
        using var response = await http.PostAsync(new Uri("/v1/blobs", UriKind.Relative), new ByteArrayContent(bytes));
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<PinResponse>())!.Cid;
    }

    /// <summary>POST /v1/jobs of a vector-add of <paramref name="a"/> and <paramref name="b"/>.</summary>
    public static Task<HttpResponseMessage> SubmitAsync(HttpClient http, string a, string b) =>
        http.PostAsJsonAsync(new Uri("/v1/jobs", UriKind.Relative), new { kernel = "vector-add", inputs = new Dictionary<string, string> { ["a"] = a, ["b"] = b } });

    public static async Task<string> ProblemTypeAsync(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("type").GetString()!;

    public async Task DisposeAsync()
    {
        try
        {
            await Gateway.DisposeAsync();
            await Environment.DisposeAsync(); // stops the storage process
        }
        finally
        {
            await Teardown.DeleteFolderAsync(_root);
        }
    }

    private sealed class CountingHandler(StorageRequests requests) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            requests.Add(request.RequestUri!);
            return base.SendAsync(request, cancellationToken);
        }
    }
}

/// <summary>The requests the gateway sent to storage on its own account.</summary>
public sealed class StorageRequests
{
    private readonly List<Uri> _sent = [];

    public void Add(Uri uri)
    {
        lock (_sent)
            _sent.Add(uri);
    }

    public int Count
    {
        get
        {
            lock (_sent)
                return _sent.Count;
        }
    }

    public void Clear()
    {
        lock (_sent)
            _sent.Clear();
    }
}
