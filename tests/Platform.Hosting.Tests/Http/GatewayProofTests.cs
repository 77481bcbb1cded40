using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Platform.Hosting.Http;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.Hosting.Tests.Http;

/// <summary>Signing and checking the gateway's proof, alone and as the endpoint filter on a real Kestrel port.</summary>
public sealed class GatewayProofTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Secret = "unit-test-gateway-secret-0123456789abcdef";
    private static readonly byte[] Key = Encoding.UTF8.GetBytes(Secret);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(30);
    private static readonly DateTimeOffset Now = DateTimeOffset.FromUnixTimeSeconds(1_796_000_000);
    private const string Path = "/v1/account/ledger?limit=5&cursor=abc";
    private const string Account = "acc_0123456789abcdef";

    private WebApplication? _app;
    private HttpClient _http = null!;
    private int _handled;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        _http?.Dispose();
        if (_app is not null)
            await _app.DisposeAsync();
    }

    private static string SignNow(string method = "GET", string path = Path, string account = Account, long? at = null) =>
        GatewayProof.Sign(Key, method, path, account, at ?? Now.ToUnixTimeSeconds());

    private static GatewayProofCheck Check(string? proof, string method = "GET", string path = Path, string? account = Account, byte[]? key = null) =>
        GatewayProof.Verify(key ?? Key, proof, method, path, account, Now, Window);

    [Fact]
    public void A_proof_verifies_for_exactly_the_request_it_was_made_for()
    {
        var proof = SignNow();

        Assert.Equal(GatewayProofCheck.Valid, Check(proof));
        Assert.Matches(@"^v1\.1796000000\.[A-Za-z0-9_-]{43}$", proof);
        Assert.Equal(GatewayProofCheck.Mismatch, Check(proof, method: "POST"));
        Assert.Equal(GatewayProofCheck.Mismatch, Check(proof, path: "/v1/account/earnings"));
        Assert.Equal(GatewayProofCheck.Mismatch, Check(proof, path: "/v1/account/ledger?limit=6&cursor=abc"));
        Assert.Equal(GatewayProofCheck.Mismatch, Check(proof, path: "/v1/account/ledger"));
        Assert.Equal(GatewayProofCheck.Mismatch, Check(proof, account: "acc_0123456789abcdee"));
        Assert.Equal(GatewayProofCheck.Mismatch, Check(proof, key: Encoding.UTF8.GetBytes(Secret + "x")));
        // The method is compared as HTTP spells it, whatever case a caller used.
        Assert.Equal(GatewayProofCheck.Valid, Check(SignNow(method: "get")));
    }

    [Fact]
    public void A_changed_timestamp_or_mac_is_a_mismatch()
    {
        var proof = SignNow();
        var parts = proof.Split('.');

        Assert.Equal(GatewayProofCheck.Mismatch, Check($"v1.{long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture) - 1}.{parts[2]}"));
        var mac = parts[2].ToCharArray();
        mac[10] = mac[10] == 'A' ? 'B' : 'A';
        Assert.Equal(GatewayProofCheck.Mismatch, Check($"v1.{parts[1]}.{new string(mac)}"));
    }

    [Theory]
    [InlineData(-30, GatewayProofCheck.Valid)]
    [InlineData(30, GatewayProofCheck.Valid)]
    [InlineData(-31, GatewayProofCheck.Expired)]
    [InlineData(-3600, GatewayProofCheck.Expired)]
    [InlineData(31, GatewayProofCheck.FromTheFuture)]
    [InlineData(3600, GatewayProofCheck.FromTheFuture)]
    public void Only_a_proof_within_the_window_either_way_is_accepted(int offsetSeconds, GatewayProofCheck expected)
    {
        Assert.Equal(expected, Check(SignNow(at: Now.ToUnixTimeSeconds() + offsetSeconds)));
    }

    [Theory]
    [InlineData("v1")]
    [InlineData("v1.1796000000")]
    [InlineData("v2.1796000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("v1.-1796000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("v1.+1796000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("v1.1796000000000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("v1..AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("v1.1796000000.AAAA")]
    [InlineData("v1.1796000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("v1.1796000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    [InlineData("v1.1796000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+")]
    [InlineData("v1.1796000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB")] // unused bits set: not the one spelling
    [InlineData("v1.1796000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.x")]
    [InlineData(" v1.1796000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    public void A_malformed_proof_is_refused_as_malformed(string proof)
    {
        Assert.Equal(GatewayProofCheck.Malformed, Check(proof));
    }

    [Fact]
    public void No_proof_or_no_account_is_missing()
    {
        Assert.Equal(GatewayProofCheck.Missing, Check(null));
        Assert.Equal(GatewayProofCheck.Missing, Check(""));
        Assert.Equal(GatewayProofCheck.Missing, Check(SignNow(), account: null));
        Assert.Equal(GatewayProofCheck.Missing, Check(SignNow(account: ""), account: ""));
    }

    [Fact]
    public void Random_requests_verify_and_any_one_changed_field_does_not()
    {
        const int seed = 15_003;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        string Text(int length) => new([.. Enumerable.Range(0, length).Select(_ => "abcdefghijklmnopqrstuvwxyz0123456789-_~%/?&=."[random.Next(45)])]);
        string[] methods = ["GET", "HEAD", "POST", "PUT", "DELETE"];
        for (var i = 0; i < 300; i++)
        {
            var (method, path, account) = (methods[random.Next(methods.Length)], "/" + Text(random.Next(0, 60)), "acc_" + Text(16));
            var at = Now.ToUnixTimeSeconds() + random.Next(-30, 31);
            var proof = SignNow(method, path, account, at);
            Assert.Equal(GatewayProofCheck.Valid, Check(proof, method, path, account));
            Assert.Equal(GatewayProofCheck.Mismatch, Check(proof, methods[(Array.IndexOf(methods, method) + 1) % methods.Length], path, account));
            Assert.Equal(GatewayProofCheck.Mismatch, Check(proof, method, path + "x", account));
            Assert.Equal(GatewayProofCheck.Mismatch, Check(proof, method, path, account + "x"));
        }
    }

    /// <summary>A real Kestrel app with one proof-guarded route, one account-optional route and the filter's options.</summary>
    private async Task StartAppAsync(TimeSpan? window = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Configuration["Platform:GatewaySecret"] = Secret;
        if (window is not null)
            builder.Configuration["Platform:GatewayProofWindow"] = window.Value.ToString();
        builder.Services.AddGatewayProof();
        var app = builder.Build();
        app.MapGet("/things/{name}", (string name, HttpContext http) =>
        {
            Interlocked.Increment(ref _handled);
            return Results.Ok(new { name, account = http.GatewayAccount() });
        }).RequireGatewayProof();
        app.MapPost("/pins", async (HttpContext http) =>
        {
            Interlocked.Increment(ref _handled);
            var body = await new StreamReader(http.Request.Body).ReadToEndAsync();
            return Results.Ok(new { account = http.GatewayAccountIfAny(), body });
        }).RequireGatewayProof(accountOptional: true);
        var url = $"http://127.0.0.1:{FreePort.Next()}";
        app.Urls.Add(url);
        await app.StartAsync();
        _app = app;
        _http = new HttpClient { BaseAddress = new Uri(url) };
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(HttpMethod method, string path, string? account, Func<Uri, string>? proof, string? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
            request.Content = new StringContent(body);
        var uri = new Uri(_http.BaseAddress!, path);
        if (account is not null)
            request.Headers.Add(GatewayProof.AccountHeader, account);
        if (proof is not null)
            request.Headers.Add(GatewayProof.Header, proof(uri));
        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        output.WriteLine($"{method} {path} -> {(int)response.StatusCode} {text}");
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    private static string LiveProof(Uri uri, string account, string method = "GET", string secret = Secret) =>
        GatewayProof.Sign(Encoding.UTF8.GetBytes(secret), method, uri.PathAndQuery, account, DateTimeOffset.UtcNow.ToUnixTimeSeconds());

    [Fact]
    public async Task The_filter_answers_401_problem_before_the_handler_and_passes_the_proved_account_on()
    {
        await StartAppAsync();
        const string path = "/things/a%20b%2Fc?q=%C3%A9t%C3%A9&x=1+2&y=%26";

        var forged = await SendAsync(HttpMethod.Get, path, Account, proof: null);
        var otherAccount = await SendAsync(HttpMethod.Get, path, "acc_victim", uri => LiveProof(uri, Account));
        var otherQuery = await SendAsync(HttpMethod.Get, path + "&z=1", Account, uri => LiveProof(new Uri(uri.ToString().Replace("&z=1", "", StringComparison.Ordinal)), Account));
        var wrongKey = await SendAsync(HttpMethod.Get, path, Account, uri => LiveProof(uri, Account, secret: Secret + "!"));

        foreach (var (status, body) in new[] { forged, otherAccount, otherQuery, wrongKey })
        {
            Assert.Equal(HttpStatusCode.Unauthorized, status);
            Assert.Equal("urn:platform:problem:gateway-proof-required", body.GetProperty("type").GetString());
        }
        Assert.Equal(0, _handled);

        var (okStatus, ok) = await SendAsync(HttpMethod.Get, path, Account, uri => LiveProof(uri, Account));
        Assert.Equal(HttpStatusCode.OK, okStatus);
        Assert.Equal(Account, ok.GetProperty("account").GetString());
        Assert.Equal(1, _handled);
    }

    [Fact]
    public async Task An_account_optional_route_takes_no_account_or_a_proved_one_but_never_an_unproved_one()
    {
        await StartAppAsync();

        var anonymous = await SendAsync(HttpMethod.Post, "/pins", account: null, proof: null, body: "bytes");
        Assert.Equal(HttpStatusCode.OK, anonymous.Status);
        Assert.Equal(JsonValueKind.Null, anonymous.Body.GetProperty("account").ValueKind);

        var proved = await SendAsync(HttpMethod.Post, "/pins", Account, uri => LiveProof(uri, Account, "POST"), body: "bytes");
        Assert.Equal(HttpStatusCode.OK, proved.Status);
        Assert.Equal(Account, proved.Body.GetProperty("account").GetString());

        var handled = _handled;
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(HttpMethod.Post, "/pins", Account, proof: null, body: "bytes")).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(HttpMethod.Post, "/pins", account: null, uri => LiveProof(uri, Account, "POST"), body: "bytes")).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(HttpMethod.Post, "/pins", Account, uri => LiveProof(uri, Account, "GET"), body: "bytes")).Status);
        Assert.Equal(handled, _handled);
    }

    [Fact]
    public async Task The_window_is_configurable()
    {
        await StartAppAsync(window: TimeSpan.FromSeconds(300));
        var old = DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 120;

        var (status, _) = await SendAsync(HttpMethod.Get, "/things/x", Account, uri => GatewayProof.Sign(Key, "GET", uri.PathAndQuery, Account, old));

        Assert.Equal(HttpStatusCode.OK, status);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("shorter-than-32-characters")]
    public async Task A_service_that_checks_proofs_does_not_start_without_a_long_enough_secret(string? secret)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseSetting("urls", "http://127.0.0.1:0");
        if (secret is not null)
            builder.Configuration["Platform:GatewaySecret"] = secret;
        builder.Services.AddGatewayProof();
        await using var app = builder.Build();

        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());

        Assert.Contains("Platform:GatewaySecret", failure.Message, StringComparison.Ordinal);
    }
}
