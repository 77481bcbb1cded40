using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using Platform.Contracts;
using Platform.Rewards.Ledger;
using Platform.Testing;

namespace Platform.Rewards.Tests;

/// <summary>
/// The rewards service running as a real process on real Postgres and RabbitMQ, called as the gateway calls it
/// (the authenticated account in X-Platform-Account, signed with the gateway's proof), with its database at hand
/// to set up accounts and a stand-in for the scheduler on the same broker, which clears every unstake unless a
/// test says otherwise.
/// </summary>
/// <param name="settings">Environment variables for the rewards process (its configuration, e.g. Staking__UnbondingPeriod).</param>
public abstract class RewardsApiTest(string environment, IDictionary<string, string?>? settings = null) : IAsyncLifetime
{
    private TestEnvironment _env = null!;
    private ServiceProcess _rewards = null!;
    protected NpgsqlDataSource Db { get; private set; } = null!;
    protected SchedulerStandIn Scheduler { get; private set; } = null!;
    private HttpClient _http = null!;

    protected TestEnvironment Env => _env;

    /// <summary>Where the rewards process listens, for callers that are not the gateway.</summary>
    protected Uri RewardsUrl => _rewards.BaseUrl;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync(environment);
        Scheduler = await SchedulerStandIn.StartAsync(_env);
        _rewards = await ServiceProcess.StartAsync("rewards", _env, settings);
        Db = NpgsqlDataSource.Create(_env.PostgresConnectionStringFor("rewards"));
        _http = GatewaySigner.Client(_env, _rewards.BaseUrl);
    }

    public async Task DisposeAsync()
    {
        _http?.Dispose();
        await Db.DisposeAsync();
        await _rewards.DisposeAsync();
        await Scheduler.DisposeAsync();
        await _env.DisposeAsync();
    }

    /// <summary>Opens an account with credits through the ledger, as OpenAccount does.</summary>
    protected async Task<string> OpenAsync(string role, decimal credits)
    {
        var account = AccountId.New().Value;
        await PostAsync($"grant:{account}", null, tx => CreditLedger.EnsureAccountAsync(tx, account, role, default),
            new Posting(CreditLedger.Mint, "grant", -credits), new Posting(account, "grant", credits));
        return account;
    }

    protected async Task PostAsync(string key, string? jobId, Func<NpgsqlTransaction, Task>? before, params Posting[] postings)
    {
        await using var connection = await Db.OpenConnectionAsync();
        await using var tx = await connection.BeginTransactionAsync();
        if (before is not null)
            await before(tx);
        Assert.NotNull(await CreditLedger.PostAsync(tx, key, jobId, postings, default));
        await tx.CommitAsync();
    }

    /// <param name="body">JSON-serialized unless it is already <see cref="HttpContent"/>.</param>
    protected Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string account, object? body = null, string? idempotencyKey = null)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Add("X-Platform-Account", account);
        if (idempotencyKey is not null)
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        if (body is not null)
            request.Content = body as HttpContent ?? JsonContent.Create(body);
        return _http.SendAsync(request);
    }

    /// <summary>The response's JSON once its status is <paramref name="expected"/>; a problem's type too when given.</summary>
    protected static async Task<JsonElement> JsonAsync(HttpResponseMessage response, HttpStatusCode expected, string? problemType = null)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(expected == response.StatusCode, $"expected {(int)expected}, got {(int)response.StatusCode}: {text}");
        var json = JsonDocument.Parse(text).RootElement;
        if (problemType is not null)
        {
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Equal($"urn:platform:problem:{problemType}", json.GetProperty("type").GetString());
        }
        return json;
    }
}
