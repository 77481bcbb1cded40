using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Dapper;
using MassTransit;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Messages;
using Platform.Contracts.Receipts;
using Platform.Contracts.Signing;
using Platform.Gateway.Auth;
using Platform.Testing;

namespace Platform.Gateway.Tests.Receipts;

/// <summary>
/// Receipts from the gateway's job record, in process on the run's real RabbitMQ and Postgres: the completion and
/// the settlement arrive as events, as they do from the scheduler and rewards.
/// </summary>
public sealed class ReceiptsApiTests : IAsyncLifetime
{
    private TestEnvironment _env = null!;
    private WebApplicationFactory<Program> _gateway = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("gateway-receipts");
        _gateway = InProcessGateway.Start(_env);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _env.DisposeAsync();
    }

    private HttpClient Client(string? key)
    {
        var http = _gateway.CreateClient();
        if (key is not null)
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    private async Task<string> AccountOfAsync(string key)
    {
        await using var connection = await _gateway.Services.GetRequiredService<NpgsqlDataSource>().OpenConnectionAsync();
        return await connection.ExecuteScalarAsync<string>("select account_id from api_keys where key_hash = @hash",
            new { hash = _gateway.Services.GetRequiredService<ApiKeyHasher>().Hash(key) }) ?? throw new InvalidOperationException("no account for the key");
    }

    /// <summary>A job of <paramref name="client"/> as submission writes it, queued.</summary>
    private async Task<(JobId Id, JobSpec Spec)> InsertJobAsync(string client)
    {
        var id = JobId.New();
        var spec = new JobSpec
        {
            Kernel = "vector-add",
            Inputs = new Dictionary<string, Cid> { ["b"] = Cid.Compute("b"u8), ["a"] = Cid.Compute("a"u8) },
            Replicas = 2,
        };
        await using var connection = await _gateway.Services.GetRequiredService<NpgsqlDataSource>().OpenConnectionAsync();
        await connection.ExecuteAsync(
            "insert into jobs (id, client_account_id, kernel, spec, status, status_rank, created_at, updated_at) values (@id, @client, 'vector-add', @spec::jsonb, 'queued', 1, now(), now())",
            new { id = id.Value, client, spec = JsonSerializer.Serialize(spec, PlatformJson.Options) });
        return (id, spec);
    }

    private async Task CompleteAsync(JobId job, string client, params ECDsa[] workers)
    {
        var outputs = new Dictionary<string, Cid> { ["c"] = Cid.Compute("c"u8) };
        var accepted = workers.Select((key, i) =>
        {
            var attempt = AttemptId.New();
            return new AcceptedAttempt
            {
                AttemptId = attempt,
                WorkerId = WorkerId.New(),
                OperatorAccountId = AccountId.New(),
                Metrics = new AttemptMetrics { DurationMs = 10 + i, Gflop = 0.5, Device = "cpu", Joules = 2.5, JoulesEstimated = i == 0 },
                Signature = ResultSignature.Sign(key, job, attempt, outputs),
                PublicKey = ResultSignature.ExportPublicKey(key),
            };
        }).ToList();
        // As on the network, the view knows each attempt (from its status changes) before the completion names it.
        var bus = _gateway.Services.GetRequiredService<IBus>();
        foreach (var attempt in accepted)
        {
            await bus.Publish(Bundle.Of(new JobStatusChanged
            {
                JobId = job,
                Status = "running",
                WorkerId = attempt.WorkerId,
                AttemptId = attempt.AttemptId,
                AttemptStatus = "running",
                OccurredAt = DateTimeOffset.UtcNow.AddSeconds(-1),
            }));
        }
        await Eventually.UntilAsync(async () =>
        {
            await using var connection = await _gateway.Services.GetRequiredService<NpgsqlDataSource>().OpenConnectionAsync();
            return await connection.ExecuteScalarAsync<int>("select count(*) from job_attempts where job_id = @id and status = 'running'", new { id = job.Value });
        }, n => n == accepted.Count, TimeSpan.FromSeconds(20), "the attempts running in the view");
        await bus.Publish(Bundle.Of(new JobCompleted
        {
            JobId = job,
            ClientAccountId = AccountId.From(client),
            AttemptId = accepted[0].AttemptId,
            WorkerId = accepted[0].WorkerId,
            OperatorAccountId = accepted[0].OperatorAccountId,
            Kernel = "vector-add",
            Outputs = outputs,
            Metrics = accepted[0].Metrics,
            Signature = accepted[0].Signature,
            Accepted = accepted,
            OccurredAt = DateTimeOffset.UtcNow,
        }));
    }

    private Task SettleAsync(JobId job, string client) => _gateway.Services.GetRequiredService<IBus>().Publish(Bundle.Of(new PaymentSettled
    {
        JobId = job,
        ClientAccountId = AccountId.From(client),
        Cost = 0.25m,
        Refunded = 0.75m,
        OperatorAccountId = AccountId.New(),
        OperatorPaid = 0.2m,
        OccurredAt = DateTimeOffset.UtcNow,
    }));

    private static async Task<(HttpStatusCode Status, byte[] Body, string? Type)> ReceiptAsync(HttpClient http, JobId job)
    {
        using var response = await http.GetAsync(new Uri($"/v1/jobs/{job}/receipt", UriKind.Relative));
        var body = await response.Content.ReadAsByteArrayAsync();
        string? type = null;
        if (!response.IsSuccessStatusCode)
            type = JsonDocument.Parse(body).RootElement.GetProperty("type").GetString();
        return (response.StatusCode, body, type);
    }

    [Fact]
    public async Task A_settled_job_has_a_receipt_that_verifies_against_the_published_key_and_no_one_else_sees_it()
    {
        var ownerKey = await _gateway.KeyForNewAccountAsync(Roles.Client);
        var otherKey = await _gateway.KeyForNewAccountAsync(Roles.Client);
        var owner = await AccountOfAsync(ownerKey);
        var (job, _) = await InsertJobAsync(owner);
        using var http = Client(ownerKey);
        using var workerA = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var workerB = ECDsa.Create(ECCurve.NamedCurves.nistP256);

        Assert.Equal((HttpStatusCode.Conflict, "urn:platform:problem:no-receipt"), Pick(await ReceiptAsync(http, job)));

        await CompleteAsync(job, owner, workerA, workerB);
        await Eventually.UntilAsync(async () => (await ReceiptAsync(http, job)).Type == "urn:platform:problem:receipt-pending",
            TimeSpan.FromSeconds(30), "the completion recorded, the payment not yet");
        await SettleAsync(job, owner);
        var (status, file, _) = await Eventually.UntilAsync(() => ReceiptAsync(http, job), r => r.Status == HttpStatusCode.OK, TimeSpan.FromSeconds(30), "the receipt issued");

        using var anonymous = Client(null);
        var key = (await anonymous.GetFromJsonAsync<ReceiptKeyView>("/v1/receipts/key"))!;
        var verification = ReceiptVerifier.Verify(file, key.PublicKey);
        Assert.True(verification.Verified, string.Join("\n", verification.Failures));
        var receipt = verification.Receipt!.Receipt;
        Assert.Equal(job.Value, receipt.JobId);
        Assert.Equal(owner, receipt.ClientAccountId);
        Assert.Equal("1", receipt.KernelVersion);
        Assert.Equal(["a", "b"], receipt.Inputs.Keys);
        Assert.Equal(2, receipt.Attempts.Count);
        Assert.Equal(5.0, receipt.Energy.Joules);
        Assert.Equal(5.0, receipt.Energy.JoulesPerGflop);
        Assert.True(receipt.Energy.Estimated);
        Assert.Equal(0.25m, receipt.Cost);
        Assert.Equal(ReceiptVerifier.Fingerprint(key.PublicKey), key.Fingerprint);

        // Another tenant's job is a missing job; the admin sees it.
        using var other = Client(otherKey);
        Assert.Equal((HttpStatusCode.NotFound, "urn:platform:problem:job-not-found"), Pick(await ReceiptAsync(other, job)));
        using var admin = Client(InProcessGateway.AdminKey);
        Assert.Equal(HttpStatusCode.OK, (await ReceiptAsync(admin, job)).Status);
    }

    [Fact]
    public async Task Every_gateway_instance_signs_with_the_one_key_kept_in_the_database()
    {
        using var first = Client(null);
        var key = (await first.GetFromJsonAsync<ReceiptKeyView>("/v1/receipts/key"))!;
        await using var second = InProcessGateway.Start(_env);
        using var http = second.CreateClient();

        Assert.Equal(key, await http.GetFromJsonAsync<ReceiptKeyView>("/v1/receipts/key"));
    }

    [Fact]
    public async Task A_configured_key_is_the_one_published()
    {
        using var configured = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        await using var gateway = InProcessGateway.Start(_env, new Dictionary<string, string> { ["Platform:ReceiptSigningKey"] = configured.ExportPkcs8PrivateKeyPem() });
        using var http = gateway.CreateClient();

        var key = (await http.GetFromJsonAsync<ReceiptKeyView>("/v1/receipts/key"))!;

        Assert.Equal(ResultSignature.ExportPublicKey(configured), key.PublicKey);
    }

    private static (HttpStatusCode, string?) Pick((HttpStatusCode Status, byte[] Body, string? Type) r) => (r.Status, r.Type);
}
