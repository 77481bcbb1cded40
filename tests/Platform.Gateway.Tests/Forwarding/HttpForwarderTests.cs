using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Platform.Gateway.Forwarding;
using Platform.Hosting.Http;
using Platform.Testing;
using Yarp.ReverseProxy.Model;

namespace Platform.Gateway.Tests.Forwarding;

/// <summary>
/// The gateway's forwarding (YARP, <see cref="UpstreamForwarder"/>) between a real Kestrel gateway and real Kestrel
/// upstreams on loopback: load balancing, active and passive health, timeouts, cancellation, headers, the proof.
/// The gateway here has one catch-all endpoint forwarding to the service named in X-Test-Upstream (storage when
/// absent) for the account in X-Test-Account, instead of the API's routes and their API-key authentication.
/// </summary>
public sealed class HttpForwarderTests : IAsyncLifetime
{
    private readonly List<WebApplication> _apps = [];
    private readonly Dictionary<string, int> _hits = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var app in _apps)
            await app.DisposeAsync();
    }

    // Never completed: a hanging upstream waits on it until the caller gives up and aborts the request.
    private readonly TaskCompletionSource _never = new();

    // Completed when a hanging upstream sees its request aborted (the gateway passed the caller's cancellation on).
    private readonly TaskCompletionSource _aborted = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static readonly byte[] Secret = System.Text.Encoding.UTF8.GetBytes("forwarder-test-gateway-secret-0123456789");

    private int Hits(string name)
    {
        lock (_hits)
            return _hits.GetValueOrDefault(name);
    }

    /// <summary>
    /// An upstream that answers with its name and the headers it received, or (<paramref name="hangs"/>) never
    /// answers; <paramref name="status"/> picks another status for some paths. Its /health/ready answers 200 and is
    /// not counted as a hit. <paramref name="port"/> 0 for any free one.
    /// </summary>
    private async Task<Uri> UpstreamAsync(string name, bool hangs = false, Func<string, int>? status = null, int port = 0)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.Run(async http =>
        {
            if (http.Request.Path == "/health/ready")
            {
                await http.Response.WriteAsync("ok");
                return;
            }
            lock (_hits)
                _hits[name] = _hits.GetValueOrDefault(name) + 1;
            if (hangs)
            {
                try
                {
                    await _never.Task.WaitAsync(http.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                    _aborted.TrySetResult();
                    throw;
                }
            }
            var received = 0L;
            var buffer = new byte[64 * 1024];
            for (int n; (n = await http.Request.Body.ReadAsync(buffer, http.RequestAborted)) > 0;)
                received += n;
            var headers = http.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
            // What a service behind the gateway would make of the proof, checked against the request as received.
            var proof = GatewayProof.Verify(Secret, headers.GetValueOrDefault(GatewayProof.Header), http.Request.Method, GatewayProofEndpoints.Target(http.Request),
                headers.GetValueOrDefault(GatewayProof.AccountHeader), DateTimeOffset.UtcNow, TimeSpan.FromSeconds(30));
            http.Response.StatusCode = status?.Invoke(http.Request.Path.Value!) ?? 200;
            await http.Response.WriteAsJsonAsync(new { name, path = http.Request.Path.Value, received, query = http.Request.QueryString.Value, headers, proof = proof.ToString() });
        });
        await app.StartAsync();
        _apps.Add(app);
        return Address(app);
    }

    private static Uri Address(WebApplication app) => new(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

    /// <summary>
    /// A gateway with the product's forwarding (<see cref="ForwardedRoutes.AddForwarding"/>, its YARP clusters) and
    /// a catch-all endpoint in place of the API's routes. The timeout is long by default, so a cold first request
    /// on a busy machine is not a 504 that takes its instance out.
    /// </summary>
    private async Task<(HttpClient Client, UpstreamForwarder Forwarder)> GatewayAsync(string storage, string? rewards = null, TimeSpan? timeout = null,
        TimeSpan? healthCheckInterval = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Upstreams:Storage"] = storage,
            ["Upstreams:Rewards"] = rewards ?? storage,
            ["Upstreams:Scheduler"] = storage,
            ["Upstreams:Timeout"] = (timeout ?? TimeSpan.FromSeconds(30)).ToString(),
            ["Upstreams:FailureCooldown"] = TimeSpan.FromMinutes(1).ToString(),
            // Long unless a test is about it: the probes do not interfere with what a test counts.
            ["Upstreams:HealthCheckInterval"] = (healthCheckInterval ?? TimeSpan.FromMinutes(5)).ToString(),
            ["Platform:GatewaySecret"] = System.Text.Encoding.UTF8.GetString(Secret),
        });
        builder.AddForwarding();
        var app = builder.Build();
        app.MapUpstreamClusters();
        app.Map("/{**rest}", (HttpContext http, UpstreamForwarder forwarder) =>
        {
            var target = http.Features.Get<IHttpRequestFeature>()!.RawTarget;
            var path = target.Split('?')[0];
            var upstream = http.Request.Headers["X-Test-Upstream"].FirstOrDefault() ?? Upstream.Storage;
            return forwarder.ForwardAsync(http, upstream, path, http.Request.Headers["X-Test-Account"].FirstOrDefault() ?? "");
        });
        await app.StartAsync();
        _apps.Add(app);
        return (new HttpClient { BaseAddress = Address(app) }, app.Services.GetRequiredService<UpstreamForwarder>());
    }

    private static async Task<(int Status, JsonElement Body)> SendAsync(HttpClient gateway, Action<HttpRequestMessage>? request = null,
        string path = "/v1/things?chunk=2", string account = "acc_caller", string upstream = Upstream.Storage)
    {
        using var message = new HttpRequestMessage(HttpMethod.Get, path);
        message.Headers.Host = "gateway.example";
        message.Headers.Add("X-Test-Upstream", upstream);
        if (account.Length > 0)
            message.Headers.Add("X-Test-Account", account);
        request?.Invoke(message);
        using var response = await gateway.SendAsync(message);
        return ((int)response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>());
    }

    private static string Name(JsonElement body) => body.GetProperty("name").GetString()!;

    private static DestinationState Destination(UpstreamForwarder forwarder, string upstream, Uri address) =>
        forwarder.Cluster(upstream).DestinationsState.AllDestinations.Single(d => new Uri(d.Model.Config.Address) == address);

    private static bool IsAvailable(UpstreamForwarder forwarder, string upstream, Uri address) =>
        forwarder.Cluster(upstream).DestinationsState.AvailableDestinations.Contains(Destination(forwarder, upstream, address));

    [Fact]
    public async Task Requests_take_turns_over_the_instances_of_a_service()
    {
        var (gateway, _) = await GatewayAsync($"{await UpstreamAsync("a")},{await UpstreamAsync("b")}");

        var served = new List<string>();
        for (var i = 0; i < 6; i++)
            served.Add(Name((await SendAsync(gateway)).Body));

        Assert.Equal(3, served.Count(n => n == "a"));
        Assert.Equal(3, served.Count(n => n == "b"));
        Assert.All(served.Zip(served.Skip(1)), pair => Assert.NotEqual(pair.First, pair.Second));
    }

    [Fact]
    public async Task A_dead_instance_is_skipped_and_requests_without_a_body_go_to_a_live_one()
    {
        var live = await UpstreamAsync("live");
        var dead = new Uri($"http://127.0.0.1:{FreePortNotListening()}/");
        var (gateway, forwarder) = await GatewayAsync($"{dead},{live}");

        for (var i = 0; i < 5; i++)
        {
            var (status, body) = await SendAsync(gateway);
            Assert.Equal(200, status);
            Assert.Equal("live", Name(body));
        }
        Assert.Equal(5, Hits("live"));
        // Passive health: the failed request took the dead one out (YARP updates the available set asynchronously).
        await Eventually.UntilAsync(() => Task.FromResult(!IsAvailable(forwarder, Upstream.Storage, dead)), TimeSpan.FromSeconds(10),
            "the dead instance taken out by the passive health check");
        Assert.Equal(DestinationHealth.Unhealthy, Destination(forwarder, Upstream.Storage, dead).Health.Passive);
        Assert.True(IsAvailable(forwarder, Upstream.Storage, live));
    }

    [Fact]
    public async Task An_upload_that_finds_an_instance_unreachable_goes_to_a_live_one_whole()
    {
        var live = await UpstreamAsync("live");
        var dead = new Uri($"http://127.0.0.1:{FreePortNotListening()}/");
        var (gateway, _) = await GatewayAsync($"{dead},{live}");
        var bytes = new byte[300_000];
        new Random(17).NextBytes(bytes);

        // Two uploads: round-robin sends one of them to the dead instance first.
        for (var i = 0; i < 2; i++)
        {
            var (status, body) = await SendAsync(gateway, request =>
            {
                request.Method = HttpMethod.Post;
                request.Content = new ByteArrayContent(bytes);
            }, "/v1/blobs");
            Assert.Equal(200, status);
            Assert.Equal("live", Name(body));
            Assert.Equal(bytes.Length, body.GetProperty("received").GetInt64());
        }
    }

    [Fact]
    public async Task Load_is_spread_over_two_instances_and_with_one_killed_every_request_succeeds_on_the_other()
    {
        var a = await UpstreamAsync("a");
        var b = await UpstreamAsync("b");
        var (gateway, _) = await GatewayAsync($"{a},{b}");
        for (var i = 0; i < 10; i++)
            Assert.Equal(200, (await SendAsync(gateway)).Status);
        Assert.True(Hits("a") >= 3 && Hits("b") >= 3, $"both instances take requests: a {Hits("a")}, b {Hits("b")}");

        await _apps.Single(app => Address(app) == b).StopAsync();
        var before = Hits("a");
        for (var i = 0; i < 20; i++)
        {
            var (status, body) = await SendAsync(gateway);
            Assert.Equal(200, status);
            Assert.Equal("a", Name(body));
        }
        Assert.Equal(before + 20, Hits("a"));
    }

    [Fact]
    public async Task The_active_health_check_takes_a_stopped_instance_out_and_brings_it_back_once_it_is_restarted()
    {
        var a = await UpstreamAsync("a");
        var b = await UpstreamAsync("b");
        var (gateway, forwarder) = await GatewayAsync($"{a},{b}", healthCheckInterval: TimeSpan.FromSeconds(1));
        var stopped = _apps.Single(app => Address(app) == b);

        // Stopped with no request sent to it: only the probes of /health/ready can notice.
        await stopped.StopAsync();
        await Eventually.UntilAsync(() => Task.FromResult(!IsAvailable(forwarder, Upstream.Storage, b)), TimeSpan.FromSeconds(20),
            "the stopped instance taken out by the active health check");
        Assert.Equal(DestinationHealth.Unhealthy, Destination(forwarder, Upstream.Storage, b).Health.Active);
        Assert.Equal(DestinationHealth.Unknown, Destination(forwarder, Upstream.Storage, b).Health.Passive);
        for (var i = 0; i < 6; i++)
            Assert.Equal("a", Name((await SendAsync(gateway)).Body));

        await UpstreamAsync("b-again", port: b.Port);
        await Eventually.UntilAsync(() => Task.FromResult(IsAvailable(forwarder, Upstream.Storage, b)), TimeSpan.FromSeconds(20),
            "the restarted instance brought back by the active health check");
        Assert.Equal(DestinationHealth.Healthy, Destination(forwarder, Upstream.Storage, b).Health.Active);
        var served = new List<string>();
        for (var i = 0; i < 6; i++)
            served.Add(Name((await SendAsync(gateway)).Body));
        Assert.Equal(3, served.Count(n => n == "b-again"));
    }

    [Fact]
    public async Task A_503_for_one_blob_is_passed_on_and_does_not_take_the_instance_out()
    {
        // Storage answers 503 for a blob it cannot serve just now, and serves every other blob.
        var a = await UpstreamAsync("a", status: path => path == "/v1/blobs/bafkreiunavailable" ? 503 : 200);
        var b = await UpstreamAsync("b", status: path => path == "/v1/blobs/bafkreiunavailable" ? 503 : 200);
        var (gateway, forwarder) = await GatewayAsync($"{a},{b}");

        for (var i = 0; i < 4; i++)
        {
            var (status, body) = await SendAsync(gateway, path: "/v1/blobs/bafkreiunavailable");
            Assert.Equal(503, status);
            Assert.Equal("/v1/blobs/bafkreiunavailable", body.GetProperty("path").GetString()); // storage's answer, not the gateway's
        }
        Assert.Equal(2, Hits("a"));
        Assert.Equal(2, Hits("b"));

        // An instance answering 502 is counted as failed (it is the yardstick: the check below does see a take-out).
        var broken = await UpstreamAsync("broken", status: _ => 502);
        var (brokenGateway, brokenForwarder) = await GatewayAsync($"{broken},{a}");
        await SendAsync(brokenGateway);
        await SendAsync(brokenGateway);
        await Eventually.UntilAsync(() => Task.FromResult(!IsAvailable(brokenForwarder, Upstream.Storage, broken)), TimeSpan.FromSeconds(10),
            "an instance answering 502 taken out");

        Assert.Equal(DestinationHealth.Unknown, Destination(forwarder, Upstream.Storage, a).Health.Passive);
        Assert.Equal(DestinationHealth.Unknown, Destination(forwarder, Upstream.Storage, b).Health.Passive);
        Assert.Equal(2, forwarder.Cluster(Upstream.Storage).DestinationsState.AvailableDestinations.Count);
        var served = new List<string>();
        for (var i = 0; i < 4; i++)
            served.Add(Name((await SendAsync(gateway, path: "/v1/blobs/bafkreiother")).Body));
        Assert.Equal(2, served.Count(n => n == "a"));
    }

    [Fact]
    public async Task No_reachable_instance_is_503_and_a_slow_one_is_504()
    {
        var (down, _) = await GatewayAsync($"http://127.0.0.1:{FreePortNotListening()}/", timeout: TimeSpan.FromSeconds(1));
        var unavailable = await SendAsync(down);
        Assert.Equal(503, unavailable.Status);
        Assert.EndsWith("upstream-unavailable", unavailable.Body.GetProperty("type").GetString(), StringComparison.Ordinal);

        var (slow, _) = await GatewayAsync((await UpstreamAsync("slow", hangs: true)).ToString(), timeout: TimeSpan.FromSeconds(1));
        var timedOut = await SendAsync(slow);
        Assert.Equal(504, timedOut.Status);
        Assert.EndsWith("upstream-timeout", timedOut.Body.GetProperty("type").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_caller_that_gives_up_cancels_the_request_to_the_upstream()
    {
        var (gateway, _) = await GatewayAsync((await UpstreamAsync("slow", hangs: true)).ToString());
        using var giveUp = new CancellationTokenSource();
        var request = gateway.GetAsync(new Uri("/v1/things", UriKind.Relative), giveUp.Token);
        await Eventually.UntilAsync(() => Task.FromResult(Hits("slow") == 1), TimeSpan.FromSeconds(10), "the request reaching the upstream");

        await giveUp.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
        await _aborted.Task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Hop_by_hop_and_identity_headers_are_replaced_and_forwarding_headers_set()
    {
        var upstream = await UpstreamAsync("a");
        var (gateway, _) = await GatewayAsync(upstream.ToString());

        var (_, body) = await SendAsync(gateway, request =>
        {
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer pk_secret");
            request.Headers.TryAddWithoutValidation("X-Platform-Account", "acc_forged");
            request.Headers.TryAddWithoutValidation("X-Platform-Gateway-Proof", "v1.1796000000.forged");
            request.Headers.TryAddWithoutValidation("X-Forwarded-For", "10.0.0.1");
            request.Headers.TryAddWithoutValidation("Forwarded", "for=10.0.0.1;host=forged.example");
            request.Headers.TryAddWithoutValidation("Keep-Alive", "timeout=5");
            request.Headers.TryAddWithoutValidation("X-Custom", "kept");
        });

        var headers = body.GetProperty("headers");
        Assert.False(headers.TryGetProperty("Authorization", out _));
        Assert.False(headers.TryGetProperty("Keep-Alive", out _));
        Assert.False(headers.TryGetProperty("Forwarded", out _));
        Assert.Equal("acc_caller", headers.GetProperty("X-Platform-Account").GetString());
        Assert.NotEqual("v1.1796000000.forged", headers.GetProperty("X-Platform-Gateway-Proof").GetString());
        Assert.Equal(nameof(GatewayProofCheck.Valid), body.GetProperty("proof").GetString());
        // The caller's Host is information (X-Forwarded-Host), never the Host a service sees.
        Assert.Equal(upstream.Authority, headers.GetProperty("Host").GetString());
        Assert.Equal("127.0.0.1", headers.GetProperty("X-Forwarded-For").GetString());
        Assert.Equal("http", headers.GetProperty("X-Forwarded-Proto").GetString());
        Assert.Equal("gateway.example", headers.GetProperty("X-Forwarded-Host").GetString());
        Assert.Equal("kept", headers.GetProperty("X-Custom").GetString());
        Assert.Equal("?chunk=2", body.GetProperty("query").GetString());
        Assert.Equal("/v1/things", body.GetProperty("path").GetString());
    }

    [Fact]
    public async Task Headers_named_in_Connection_are_not_forwarded_and_the_others_are()
    {
        var (gateway, _) = await GatewayAsync((await UpstreamAsync("a")).ToString());

        // RFC 9110 §7.6.1: a header the Connection header names is for this hop only; a proxy removes it. Sent raw:
        // HttpClient keeps only the Connection tokens it knows (keep-alive, close).
        var raw = await RawAsync(gateway.BaseAddress!,
            "GET /v1/things HTTP/1.1\r\nHost: gateway.example\r\nConnection: keep-alive, X-Hop-One\r\nConnection:  x-hop-two \r\n"
            + "X-Hop-One: for the gateway only\r\nX-Hop-Two: for the gateway only\r\nX-End-To-End: kept\r\nX-Test-Account: acc_caller\r\n\r\n");

        // The upstream's answer lists the headers it received.
        Assert.StartsWith("HTTP/1.1 200", raw, StringComparison.Ordinal);
        Assert.Contains("\"X-End-To-End\":\"kept\"", raw, StringComparison.Ordinal);
        Assert.DoesNotContain("X-Hop-One", raw, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("X-Hop-Two", raw, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// Sends <paramref name="request"/> as it is and reads the answer until the gateway closes the connection (it
    /// does after the answer: Connection: close is added) or the deadline.
    /// </summary>
    private static async Task<string> RawAsync(Uri server, string request)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(server.Host, server.Port, deadline.Token);
        var stream = tcp.GetStream();
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(request.Replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n", StringComparison.Ordinal)), deadline.Token);
        using var received = new MemoryStream();
        await stream.CopyToAsync(received, deadline.Token);
        return System.Text.Encoding.UTF8.GetString(received.ToArray());
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
        _apps.Add(app);
        var (gateway, _) = await GatewayAsync(Address(app).ToString());

        using var response = await gateway.GetAsync(new Uri("/v1/things", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("kept", Assert.Single(response.Headers.GetValues("X-Upstream-End-To-End")));
        Assert.False(response.Headers.Contains("X-Upstream-Hop"), "X-Upstream-Hop is named in the upstream's Connection and was passed back");
        Assert.DoesNotContain(response.Headers.Connection, value => value.Contains("X-Upstream-Hop", StringComparison.OrdinalIgnoreCase));
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
    [InlineData("X-Platform-Anything-Internal", "acc_caller")]
    [InlineData("X-Forwarded-For", "acc_caller")]
    [InlineData("X-Forwarded-Proto", "")]
    [InlineData("X-Forwarded-Host", "acc_caller")]
    public async Task A_client_cannot_send_an_internal_header_through(string header, string account)
    {
        var (gateway, _) = await GatewayAsync((await UpstreamAsync("a")).ToString());
        const string Forged = "forged-by-the-client";

        var (status, body) = await SendAsync(gateway, request => request.Headers.Add(header, Forged), "/v1/blobs/bafkreiabc", account);

        Assert.Equal(200, status);
        var received = body.GetProperty("headers").EnumerateObject().ToDictionary(h => h.Name, h => h.Value.GetString(), StringComparer.OrdinalIgnoreCase);
        Assert.DoesNotContain(received, h => h.Value!.Contains(Forged, StringComparison.Ordinal));
        if (header.StartsWith("X-Platform-", StringComparison.OrdinalIgnoreCase) && !(header.Equals(GatewayProof.AccountHeader, StringComparison.OrdinalIgnoreCase) || header.Equals(GatewayProof.Header, StringComparison.OrdinalIgnoreCase)))
            Assert.False(received.ContainsKey(header), $"{header} reached the service");
    }

    [Theory]
    [InlineData("GET", "/v1/blobs/bafkreiabc/proof", "?chunk=2")]
    [InlineData("PUT", "/v1/account/low-balance", "")]
    [InlineData("DELETE", "/v1/account/webhook", "")]
    [InlineData("GET", "/v1/account/ledger", "?cursor=MTIzLjQ1&limit=5&x=%C3%A9t%C3%A9+a%26b")]
    [InlineData("GET", "/v1/blobs/a%20b%2Fc", "?q=[1]&r=%7E~")]
    public async Task Each_request_forwarded_for_an_account_carries_a_proof_the_service_accepts_for_it(string method, string path, string query)
    {
        var (gateway, _) = await GatewayAsync((await UpstreamAsync("a")).ToString());

        var (status, body) = await SendAsync(gateway, request => request.Method = new HttpMethod(method), path + query, upstream: Upstream.Rewards);

        Assert.Equal(200, status);
        Assert.Equal(nameof(GatewayProofCheck.Valid), body.GetProperty("proof").GetString());
        Assert.Equal("acc_caller", body.GetProperty("headers").GetProperty("X-Platform-Account").GetString());
    }

    [Fact]
    public async Task A_request_forwarded_without_an_account_carries_neither_account_nor_proof()
    {
        var (gateway, _) = await GatewayAsync((await UpstreamAsync("a")).ToString());

        var (_, body) = await SendAsync(gateway, request =>
        {
            request.Headers.TryAddWithoutValidation("X-Platform-Account", "acc_forged");
            request.Headers.TryAddWithoutValidation("X-Platform-Gateway-Proof", "v1.1796000000.forged");
        }, "/v1/workers", account: "", upstream: Upstream.Scheduler);

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
