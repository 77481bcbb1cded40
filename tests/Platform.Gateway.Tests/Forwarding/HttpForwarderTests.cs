using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Platform.Gateway.Forwarding;
using Platform.Hosting.Http;

namespace Platform.Gateway.Tests.Forwarding;

/// <summary>The forwarder against real HTTP upstreams on loopback: round-robin, passive health, timeouts, headers.</summary>
public sealed class HttpForwarderTests : IAsyncLifetime
{
    private readonly List<WebApplication> _upstreams = [];
    private readonly Dictionary<string, int> _hits = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var upstream in _upstreams)
            await upstream.DisposeAsync();
    }

    // Never completed: a hanging upstream waits on it until the caller gives up and aborts the request.
    private readonly TaskCompletionSource _never = new();

    /// <summary>An upstream that answers with its name and the headers it received, or (<paramref name="hangs"/>) never answers.</summary>
    private async Task<Uri> UpstreamAsync(string name, bool hangs = false)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.Run(async http =>
        {
            lock (_hits)
                _hits[name] = _hits.GetValueOrDefault(name) + 1;
            if (hangs)
                await _never.Task.WaitAsync(http.RequestAborted);
            var headers = http.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
            // What a service behind the gateway would make of the proof, checked against the request as received.
            var proof = GatewayProof.Verify(Secret, headers.GetValueOrDefault(GatewayProof.Header), http.Request.Method, GatewayProofEndpoints.Target(http.Request),
                headers.GetValueOrDefault(GatewayProof.AccountHeader), DateTimeOffset.UtcNow, TimeSpan.FromSeconds(30));
            await http.Response.WriteAsJsonAsync(new { name, path = http.Request.Path.Value, query = http.Request.QueryString.Value, headers, proof = proof.ToString() });
        });
        await app.StartAsync();
        _upstreams.Add(app);
        return new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    private static readonly UpstreamOptions Options = new() { Timeout = TimeSpan.FromSeconds(30), FailureCooldown = TimeSpan.FromMinutes(1) };

    private static readonly byte[] Secret = System.Text.Encoding.UTF8.GetBytes("forwarder-test-gateway-secret-0123456789");

    /// <param name="timeout">The per-route timeout; the default is long, so a cold first request on a busy machine is
    /// not a 504 that puts its instance in the cooldown.</param>

    private static HttpForwarder Forwarder(TimeSpan? timeout = null) => new(new HttpClient { Timeout = Timeout.InfiniteTimeSpan },
        Microsoft.Extensions.Options.Options.Create(new UpstreamOptions { Timeout = timeout ?? Options.Timeout, FailureCooldown = Options.FailureCooldown }),
        new GatewayProof(Microsoft.Extensions.Options.Options.Create(new GatewayProofOptions { GatewaySecret = System.Text.Encoding.UTF8.GetString(Secret) }), TimeProvider.System),
        NullLogger<HttpForwarder>.Instance);

    private static async Task<(int Status, JsonElement Body)> ForwardAsync(HttpForwarder forwarder, UpstreamPool pool, Action<HttpRequest>? request = null,
        string path = "/v1/things", string account = "acc_caller")
    {
        var http = new DefaultHttpContext { RequestServices = new ServiceCollection().AddLogging().BuildServiceProvider() };
        http.Request.Method = "GET";
        http.Request.Scheme = "http";
        http.Request.Host = new HostString("gateway.example");
        http.Request.QueryString = new QueryString("?chunk=2");
        http.Connection.RemoteIpAddress = IPAddress.Parse("203.0.113.7");
        request?.Invoke(http.Request);
        using var body = new MemoryStream();
        http.Response.Body = body;
        await forwarder.ForwardAsync(http, pool, path, account);
        body.Position = 0;
        return (http.Response.StatusCode, JsonDocument.Parse(body).RootElement.Clone());
    }

    [Fact]
    public async Task Requests_take_turns_over_the_instances_of_a_service()
    {
        var pool = new UpstreamPool("storage", $"{await UpstreamAsync("a")},{await UpstreamAsync("b")}", Options.FailureCooldown, TimeProvider.System);
        var forwarder = Forwarder();

        var served = new List<string>();
        for (var i = 0; i < 6; i++)
            served.Add((await ForwardAsync(forwarder, pool)).Body.GetProperty("name").GetString()!);

        Assert.Equal(3, served.Count(n => n == "a"));
        Assert.Equal(3, served.Count(n => n == "b"));
        Assert.All(served.Zip(served.Skip(1)), pair => Assert.NotEqual(pair.First, pair.Second));
    }

    [Fact]
    public async Task A_dead_instance_is_skipped_and_requests_without_a_body_go_to_a_live_one()
    {
        var live = await UpstreamAsync("live");
        var dead = new Uri($"http://127.0.0.1:{FreePortNotListening()}/");
        var pool = new UpstreamPool("storage", $"{dead},{live}", Options.FailureCooldown, TimeProvider.System);
        var forwarder = Forwarder();

        for (var i = 0; i < 5; i++)
        {
            var (status, body) = await ForwardAsync(forwarder, pool);
            Assert.Equal(200, status);
            Assert.Equal("live", body.GetProperty("name").GetString());
        }
        Assert.Equal(5, _hits["live"]);
        Assert.Equal(live, pool.Next()); // the dead one is cooling down
    }

    [Fact]
    public async Task No_reachable_instance_is_503_and_a_slow_one_is_504()
    {
        var forwarder = Forwarder(timeout: TimeSpan.FromSeconds(1));
        var down = new UpstreamPool("rewards", $"http://127.0.0.1:{FreePortNotListening()}/", Options.FailureCooldown, TimeProvider.System);
        var unavailable = await ForwardAsync(forwarder, down);
        Assert.Equal(503, unavailable.Status);
        Assert.EndsWith("upstream-unavailable", unavailable.Body.GetProperty("type").GetString(), StringComparison.Ordinal);

        var slow = new UpstreamPool("scheduler", (await UpstreamAsync("slow", hangs: true)).ToString(), Options.FailureCooldown, TimeProvider.System);
        var timedOut = await ForwardAsync(forwarder, slow);
        Assert.Equal(504, timedOut.Status);
        Assert.EndsWith("upstream-timeout", timedOut.Body.GetProperty("type").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Hop_by_hop_and_identity_headers_are_replaced_and_forwarding_headers_set()
    {
        var pool = new UpstreamPool("storage", (await UpstreamAsync("a")).ToString(), Options.FailureCooldown, TimeProvider.System);

        var (_, body) = await ForwardAsync(Forwarder(), pool, request =>
        {
            request.Headers.Authorization = "Bearer pk_secret";
            request.Headers["X-Platform-Account"] = "acc_forged";
            request.Headers["X-Platform-Gateway-Proof"] = "v1.1796000000.forged";
            request.Headers["X-Forwarded-For"] = "10.0.0.1";
            request.Headers["Keep-Alive"] = "timeout=5";
            request.Headers["X-Custom"] = "kept";
        });

        var headers = body.GetProperty("headers");
        Assert.False(headers.TryGetProperty("Authorization", out _));
        Assert.False(headers.TryGetProperty("Keep-Alive", out _));
        Assert.Equal("acc_caller", headers.GetProperty("X-Platform-Account").GetString());
        Assert.NotEqual("v1.1796000000.forged", headers.GetProperty("X-Platform-Gateway-Proof").GetString());
        Assert.Equal(nameof(GatewayProofCheck.Valid), body.GetProperty("proof").GetString());
        Assert.Equal("203.0.113.7", headers.GetProperty("X-Forwarded-For").GetString());
        Assert.Equal("http", headers.GetProperty("X-Forwarded-Proto").GetString());
        Assert.Equal("gateway.example", headers.GetProperty("X-Forwarded-Host").GetString());
        Assert.Equal("kept", headers.GetProperty("X-Custom").GetString());
        Assert.Equal("?chunk=2", body.GetProperty("query").GetString());
        Assert.Equal("/v1/things", body.GetProperty("path").GetString());
    }

    [Fact]
    public async Task Headers_named_in_Connection_are_not_forwarded_and_the_others_are()
    {
        var pool = new UpstreamPool("storage", (await UpstreamAsync("a")).ToString(), Options.FailureCooldown, TimeProvider.System);

        // RFC 9110 §7.6.1: a header the Connection header names is for this hop only; a proxy removes it.
        var (_, body) = await ForwardAsync(Forwarder(), pool, request =>
        {
            request.Headers.Connection = new Microsoft.Extensions.Primitives.StringValues(["keep-alive, X-Hop-One", " x-hop-two "]);
            request.Headers["X-Hop-One"] = "for the gateway only";
            request.Headers["X-Hop-Two"] = "for the gateway only";
            request.Headers["X-End-To-End"] = "kept";
        });

        var headers = body.GetProperty("headers");
        Assert.False(headers.TryGetProperty("X-Hop-One", out _), "X-Hop-One is named in Connection and was forwarded");
        Assert.False(headers.TryGetProperty("X-Hop-Two", out _), "X-Hop-Two is named in Connection (another value, lower case) and was forwarded");
        Assert.Equal("kept", headers.GetProperty("X-End-To-End").GetString());
    }

    [Fact]
    public async Task Headers_the_upstream_names_in_Connection_are_not_passed_back_to_the_client()
    {
        var upstream = WebApplication.CreateSlimBuilder();
        upstream.WebHost.UseUrls("http://127.0.0.1:0");
        upstream.Logging.ClearProviders();
        var app = upstream.Build();
        app.Run(async http =>
        {
            http.Response.Headers.Connection = "X-Upstream-Hop";
            http.Response.Headers["X-Upstream-Hop"] = "for the gateway only";
            http.Response.Headers["X-Upstream-End-To-End"] = "kept";
            await http.Response.WriteAsJsonAsync(new { name = "a" });
        });
        await app.StartAsync();
        _upstreams.Add(app);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var pool = new UpstreamPool("storage", address, Options.FailureCooldown, TimeProvider.System);

        var http = new DefaultHttpContext { RequestServices = new ServiceCollection().AddLogging().BuildServiceProvider() };
        http.Request.Method = "GET";
        http.Request.Scheme = "http";
        http.Request.Host = new HostString("gateway.example");
        http.Response.Body = new MemoryStream();
        await Forwarder().ForwardAsync(http, pool, "/v1/things", "acc_caller");

        Assert.Equal(200, http.Response.StatusCode);
        Assert.Equal("kept", http.Response.Headers["X-Upstream-End-To-End"].ToString());
        Assert.False(http.Response.Headers.ContainsKey("X-Upstream-Hop"), "X-Upstream-Hop is named in the upstream's Connection and was passed back");
        Assert.False(http.Response.Headers.ContainsKey("Connection"));
    }

    /// <summary>Headers only the gateway (or a storage node) may set: whatever a client sends in them never reaches a service.</summary>
    [Theory]
    [InlineData("X-Platform-Storage-Peer", "acc_caller")]
    [InlineData("X-Platform-Storage-Peer", "")]
    [InlineData("x-platform-storage-peer", "acc_caller")]
    [InlineData("X-Platform-Account", "acc_caller")]
    [InlineData("X-Platform-Account", "")]
    [InlineData("X-Platform-Gateway-Proof", "acc_caller")]
    [InlineData("X-Platform-Gateway-Proof", "")]
    [InlineData("X-Forwarded-For", "acc_caller")]
    [InlineData("X-Forwarded-Proto", "")]
    [InlineData("X-Forwarded-Host", "acc_caller")]
    public async Task A_client_cannot_send_an_internal_header_through(string header, string account)
    {
        var pool = new UpstreamPool("storage", (await UpstreamAsync("a")).ToString(), Options.FailureCooldown, TimeProvider.System);
        const string Forged = "forged-by-the-client";

        var (status, body) = await ForwardAsync(Forwarder(), pool, request => request.Headers[header] = Forged, "/v1/blobs/bafkreiabc", account);

        Assert.Equal(200, status);
        var received = body.GetProperty("headers").EnumerateObject().ToDictionary(h => h.Name, h => h.Value.GetString(), StringComparer.OrdinalIgnoreCase);
        Assert.DoesNotContain(received, h => h.Value!.Contains(Forged, StringComparison.Ordinal));
        if (header.Equals("X-Platform-Storage-Peer", StringComparison.OrdinalIgnoreCase))
            Assert.False(received.ContainsKey(header), "the storage peer header reached the storage service");
    }

    [Theory]
    [InlineData("GET", "/v1/blobs/bafkreiabc/proof", "?chunk=2")]
    [InlineData("PUT", "/v1/account/low-balance", "")]
    [InlineData("GET", "/v1/account/ledger", "?cursor=MTIzLjQ1&limit=5&x=%C3%A9t%C3%A9+a%26b")]
    [InlineData("GET", "/v1/blobs/a%20b%2Fc", "?q=[1]&r=%7E~")]
    public async Task Each_request_forwarded_for_an_account_carries_a_proof_the_service_accepts_for_it(string method, string path, string query)
    {
        var pool = new UpstreamPool("rewards", (await UpstreamAsync("a")).ToString(), Options.FailureCooldown, TimeProvider.System);

        var (status, body) = await ForwardAsync(Forwarder(), pool, request =>
        {
            request.Method = method;
            request.QueryString = new QueryString(query);
        }, path);

        Assert.Equal(200, status);
        Assert.Equal(nameof(GatewayProofCheck.Valid), body.GetProperty("proof").GetString());
        Assert.Equal("acc_caller", body.GetProperty("headers").GetProperty("X-Platform-Account").GetString());
    }

    [Fact]
    public async Task A_request_forwarded_without_an_account_carries_neither_account_nor_proof()
    {
        var pool = new UpstreamPool("scheduler", (await UpstreamAsync("a")).ToString(), Options.FailureCooldown, TimeProvider.System);

        var (_, body) = await ForwardAsync(Forwarder(), pool, request =>
        {
            request.Headers["X-Platform-Account"] = "acc_forged";
            request.Headers["X-Platform-Gateway-Proof"] = "v1.1796000000.forged";
        }, "/v1/workers", account: "");

        var headers = body.GetProperty("headers");
        Assert.False(headers.TryGetProperty("X-Platform-Account", out _));
        Assert.False(headers.TryGetProperty("X-Platform-Gateway-Proof", out _));
    }

    private static int FreePortNotListening()
    {
        using var socket = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        socket.Start();
        return ((IPEndPoint)socket.LocalEndpoint).Port;
    }
}
