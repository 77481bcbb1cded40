using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Platform.Gateway.Auth;
using Platform.Gateway.Forwarding;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.Gateway.Tests.Forwarding;

/// <summary>
/// Upstreams:UploadTimeout on POST /v1/blobs: the gateway in process on Kestrel (its real route, authentication and
/// YARP forwarding) in front of a stand-in storage on loopback, with the upload timeout short and the general
/// Upstreams:Timeout long, so only the upload timeout can end what the tests stall.
/// </summary>
public sealed class UploadTimeoutTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan UploadTimeout = TimeSpan.FromSeconds(2);

    // Far beyond UploadTimeout (a busy two-core machine included) and far below Upstreams:Timeout: an answer within
    // it came from the upload timeout; none means the stall was never cut.
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    private const int Seed = 17;

    private TestEnvironment _env = null!;
    private WebApplication _storage = null!;
    private WebApplicationFactory<Program> _gateway = null!;
    private readonly TaskCompletionSource _never = new();
    private volatile bool _storageHangs;
    private int _stored;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("gateway-upload-timeout");
        _storage = await StorageAsync();
        var storage = _storage.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        _gateway = InProcessGateway.Start(_env, new Dictionary<string, string>
        {
            ["Upstreams:Storage"] = storage,
            ["Upstreams:UploadTimeout"] = UploadTimeout.ToString(),
            ["Upstreams:Timeout"] = TimeSpan.FromMinutes(5).ToString(),
        }, kestrel: true);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _storage.DisposeAsync();
        await _env.DisposeAsync();
    }

    /// <summary>
    /// Storage as the gateway sees it: reads the whole upload and answers 201, or (<see cref="_storageHangs"/>) reads it
    /// and never answers, as a storage stuck on its disk would. <see cref="_stored"/> counts the uploads it got whole.
    /// </summary>
    private async Task<WebApplication> StorageAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.MapGet("/health/ready", () => "ok");
        app.MapPost("/v1/blobs", async (HttpContext http) =>
        {
            var received = 0L;
            var buffer = new byte[64 * 1024];
            for (int n; (n = await http.Request.Body.ReadAsync(buffer, http.RequestAborted)) > 0;)
                received += n;
            Interlocked.Increment(ref _stored);
            if (_storageHangs)
                await _never.Task.WaitAsync(http.RequestAborted);
            return Results.Json(new { cid = "bafkreistandin", size = received }, statusCode: StatusCodes.Status201Created);
        });
        await app.StartAsync();
        return app;
    }

    private async Task<HttpClient> ClientAsync()
    {
        var key = await _gateway.KeyForNewAccountAsync(Roles.Client);
        var http = new HttpClient { BaseAddress = _gateway.Address(), Timeout = Deadline };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    [Fact]
    public async Task A_client_that_stops_sending_its_upload_gets_408_problem_after_the_upload_timeout_and_the_gateway_serves_on()
    {
        using var http = await ClientAsync();
        var key = http.DefaultRequestHeaders.Authorization!.Parameter!;
        var sent = new byte[64 * 1024];
        new Random(Seed).NextBytes(sent);

        // Declares a megabyte, sends 64 KiB, then nothing: a client on a dead link, or one holding the gateway's
        // connection on purpose. 64 KiB keeps its average above Kestrel's minimum data rate (240 B/s) for minutes,
        // so only the upload timeout can end it within the deadline. Raw HTTP/1.1, because HttpClient reads no
        // answer before its body is sent.
        var address = _gateway.Address();
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(address.Host, address.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /v1/blobs HTTP/1.1\r\nHost: {address.Authority}\r\nAuthorization: Bearer {key}\r\n" +
            $"Content-Type: application/octet-stream\r\nContent-Length: {1 << 20}\r\n\r\n"));
        await stream.WriteAsync(sent);
        await stream.FlushAsync();
        var stalled = Stopwatch.StartNew();
        var answer = await ReadResponseAsync(stream);
        stalled.Stop();
        output.WriteLine($"seed {Seed}: {sent.Length} bytes sent, answered {answer.Status} after {stalled.Elapsed}");

        Assert.True(answer.Status == 408, $"expected 408, got {answer.Status} after {stalled.Elapsed}: {answer.Body}");
        Assert.Equal("application/problem+json", answer.ContentType);
        var problem = JsonDocument.Parse(answer.Body).RootElement;
        Assert.Equal("urn:platform:problem:request-body-timeout", problem.GetProperty("type").GetString());
        Assert.Equal(408, problem.GetProperty("status").GetInt32());
        Assert.DoesNotContain("Exception", answer.Body, StringComparison.Ordinal);
        // It was the upload timeout that ended it, not before it ran out.
        Assert.True(stalled.Elapsed >= UploadTimeout - TimeSpan.FromMilliseconds(100), $"answered after {stalled.Elapsed}, before the upload timeout {UploadTimeout}");
        Assert.Equal(0, Volatile.Read(ref _stored));
        // The client's stall is not storage's failure: its instance stays in.
        var cluster = _gateway.Services.GetRequiredService<UpstreamForwarder>().Cluster(Upstream.Storage);
        Assert.Single(cluster.DestinationsState.AvailableDestinations);

        await AnUploadSucceedsAsync(http);
    }

    [Fact]
    public async Task Storage_that_does_not_answer_an_upload_is_504_problem_after_the_upload_timeout_and_the_gateway_serves_on()
    {
        using var http = await ClientAsync();
        var bytes = new byte[100_000];
        new Random(Seed).NextBytes(bytes);
        _storageHangs = true;

        var started = Stopwatch.StartNew();
        using (var content = new ByteArrayContent(bytes))
        using (var response = await http.PostAsync(new Uri("/v1/blobs", UriKind.Relative), content))
        {
            started.Stop();
            var body = await response.Content.ReadAsStringAsync();
            output.WriteLine($"seed {Seed}: {bytes.Length} bytes sent, answered {(int)response.StatusCode} after {started.Elapsed}");
            Assert.True(response.StatusCode == HttpStatusCode.GatewayTimeout, $"expected 504, got {(int)response.StatusCode} after {started.Elapsed}: {body}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Equal("urn:platform:problem:upstream-timeout", JsonDocument.Parse(body).RootElement.GetProperty("type").GetString());
            Assert.DoesNotContain("Exception", body, StringComparison.Ordinal);
            Assert.True(started.Elapsed >= UploadTimeout - TimeSpan.FromMilliseconds(100), $"answered after {started.Elapsed}, before the upload timeout {UploadTimeout}");
        }
        Assert.Equal(1, Volatile.Read(ref _stored));

        _storageHangs = false;
        await AnUploadSucceedsAsync(http);
    }

    /// <summary>A normal upload after the failed one: forwarded whole and answered by storage.</summary>
    private async Task AnUploadSucceedsAsync(HttpClient http)
    {
        var before = Volatile.Read(ref _stored);
        var bytes = new byte[50_000];
        new Random(Seed + 1).NextBytes(bytes);
        using var content = new ByteArrayContent(bytes);
        using var response = await http.PostAsync(new Uri("/v1/blobs", UriKind.Relative), content);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"the upload after: {(int)response.StatusCode} {body}");
        Assert.Equal(bytes.Length, JsonDocument.Parse(body).RootElement.GetProperty("size").GetInt64());
        Assert.Equal(before + 1, Volatile.Read(ref _stored));
    }

    private sealed record RawResponse(int Status, string? ContentType, string Body);

    /// <summary>
    /// Reads one HTTP/1.1 response (Content-Length or chunked) from <paramref name="stream"/>, or fails the test when
    /// none is complete within <see cref="Deadline"/> or the gateway closes the connection without one.
    /// </summary>
    private static async Task<RawResponse> ReadResponseAsync(NetworkStream stream)
    {
        using var deadline = new CancellationTokenSource(Deadline);
        var received = new List<byte>();
        var buffer = new byte[16 * 1024];
        while (true)
        {
            if (TryParse(received.ToArray()) is { } response)
                return response;
            int n;
            try
            {
                n = await stream.ReadAsync(buffer, deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"no complete answer within {Deadline}: the stalled upload was never cut (received: {Encoding.ASCII.GetString([.. received])})");
            }
            if (n == 0)
                throw new IOException($"the gateway closed the connection without a complete answer (received: {Encoding.ASCII.GetString([.. received])})");
            received.AddRange(buffer.AsSpan(0, n));
        }
    }

    private static RawResponse? TryParse(byte[] bytes)
    {
        var text = Encoding.ASCII.GetString(bytes);
        var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (end < 0)
            return null;
        var lines = text[..end].Split("\r\n");
        var status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = lines.Skip(1).Select(l => l.Split(':', 2)).ToDictionary(p => p[0].Trim(), p => p[1].Trim(), StringComparer.OrdinalIgnoreCase);
        var rest = bytes.AsSpan(end + 4);
        string? body = null;
        if (headers.TryGetValue("Content-Length", out var length))
        {
            var size = int.Parse(length, System.Globalization.CultureInfo.InvariantCulture);
            if (rest.Length >= size)
                body = Encoding.UTF8.GetString(rest[..size]);
        }
        else if (headers.TryGetValue("Transfer-Encoding", out var encoding) && encoding.Equals("chunked", StringComparison.OrdinalIgnoreCase))
            body = Dechunk(rest.ToArray());
        else
            throw new InvalidDataException($"an answer with neither Content-Length nor chunked encoding: {text}");
        return body is null ? null : new RawResponse(status, headers.GetValueOrDefault("Content-Type")?.Split(';')[0], body);
    }

    /// <summary>The body of a chunked message, or null until its last chunk has arrived.</summary>
    private static string? Dechunk(byte[] bytes)
    {
        var body = new List<byte>();
        var at = 0;
        while (true)
        {
            var lineEnd = Encoding.ASCII.GetString(bytes, at, bytes.Length - at).IndexOf("\r\n", StringComparison.Ordinal);
            if (lineEnd < 0)
                return null;
            var size = Convert.ToInt32(Encoding.ASCII.GetString(bytes, at, lineEnd).Split(';')[0], 16);
            at += lineEnd + 2;
            if (size == 0)
                return Encoding.UTF8.GetString([.. body]);
            if (bytes.Length < at + size + 2)
                return null;
            body.AddRange(bytes.AsSpan(at, size));
            at += size + 2;
        }
    }
}
