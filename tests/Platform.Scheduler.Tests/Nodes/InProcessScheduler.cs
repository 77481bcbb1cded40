using System.Net.Http.Json;
using System.Security.Cryptography;
using Dapper;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Signing;
using Platform.Scheduler.Nodes;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Nodes;

/// <summary>
/// The scheduler as it runs (HTTP, migrations, its bus on the real RabbitMQ in the test's vhost, node logins made
/// through the real management API), in process. Enrollment calls it directly with the operator in
/// X-Platform-Account, as the gateway forwards it.
/// </summary>
public sealed class InProcessScheduler : IAsyncDisposable
{
    private readonly WebApplicationFactory<Program> _factory;
    private readonly TestEnvironment _env;
    private readonly List<WorkerId> _enrolled = [];

    private InProcessScheduler(TestEnvironment env, WebApplicationFactory<Program> factory)
    {
        _env = env;
        _factory = factory;
        // Calls as the gateway makes them: an X-Platform-Account header goes with the gateway's proof.
        Http = factory.CreateDefaultClient(new GatewaySigner(env.GatewaySecret));
        // Calls as anyone else who reaches the scheduler's port makes them: headers as given, no proof.
        UnsignedHttp = factory.CreateClient();
    }

    public HttpClient Http { get; }

    public HttpClient UnsignedHttp { get; }

    public IServiceProvider Services => _factory.Services;

    public NpgsqlDataSource Database => _factory.Services.GetRequiredService<NpgsqlDataSource>();

    public static InProcessScheduler Start(TestEnvironment env)
    {
        var factory = new WebApplicationFactory<Program>().WithWebHostBuilder(web =>
        {
            web.UseSetting("ConnectionStrings:RabbitMq", env.RabbitMqUri);
            web.UseSetting("ConnectionStrings:Postgres", env.PostgresConnectionStringFor("scheduler"));
            web.UseSetting("RabbitMq:ManagementUrl", env.Infrastructure.RabbitMqManagementUri.AbsoluteUri);
            web.UseSetting("Platform:GatewaySecret", env.GatewaySecret);
            web.UseSetting("Scheduler:MinimumStake", "0");
            web.UseSetting("Scheduler:SpotChecks", "false");
            web.UseSetting("Scheduler:DispatchInterval", "00:00:00.200");
            // None of these tests is about liveness: nodes announce themselves and need not beat.
            web.UseSetting("Scheduler:HeartbeatInterval", "00:10:00");
            web.UseSetting("Scheduler:LeaseDuration", "00:10:00");
            web.UseSetting("Scheduler:GracePeriod", "00:30:00");
        });
        _ = factory.Server; // started: migrations applied, bus connected
        return new InProcessScheduler(env, factory);
    }

    /// <summary>A node's key and id, and the signed enrollment request it makes.</summary>
    public sealed record Node(WorkerId WorkerId, ECDsa Key)
    {
        public string PublicKey => ResultSignature.ExportPublicKey(Key);

        public static Node New() => new(WorkerId.New(), ECDsa.Create(ECCurve.NamedCurves.nistP256));

        public NodeEnrollmentRequest Request() =>
            new(WorkerId.Value, PublicKey, WorkerMessageSignature.Sign(Key, NodeEnrollmentSignature.Payload(WorkerId.Value, PublicKey)));
    }

    public async Task<HttpResponseMessage> PostEnrollmentAsync(AccountId? @operator, NodeEnrollmentRequest request)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/nodes") { Content = JsonContent.Create(request) };
        if (@operator is { } account)
            message.Headers.Add(NodeEnrollmentApi.AccountHeader, account.Value);
        if (WorkerId.TryParse(request.WorkerId, null, out var worker))
            _enrolled.Add(worker);
        return await Http.SendAsync(message);
    }

    /// <summary>Enrolls <paramref name="node"/> for <paramref name="operator"/> and returns the answer (201 or 200).</summary>
    public async Task<NodeEnrollmentResponse> EnrollAsync(AccountId @operator, Node node)
    {
        using var response = await PostEnrollmentAsync(@operator, node.Request());
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"enrollment answered {(int)response.StatusCode}: {body}");
        return System.Text.Json.JsonSerializer.Deserialize<NodeEnrollmentResponse>(body, PlatformJson.Options)!;
    }

    /// <summary>GET /v1/network's count of dropped node messages for <paramref name="reason"/>.</summary>
    public async Task<long> RejectedAsync(string reason)
    {
        var network = await Http.GetFromJsonAsync<NetworkView>("/v1/network", PlatformJson.Options);
        return network!.RejectedNodeMessages.GetValueOrDefault(reason);
    }

    public async Task<T?> QueryAsync<T>(string sql, object parameters)
    {
        await using var connection = await Database.OpenConnectionAsync();
        return await connection.QuerySingleOrDefaultAsync<T>(sql, parameters);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        try
        {
            await _factory.DisposeAsync();
        }
        finally
        {
            // Node users live outside the test's vhost: remove the ones this run made (each delete tried again until a
            // deadline, Teardown).
            foreach (var user in _enrolled.Distinct().Select(NodeNames.User))
                await Teardown.RetryAsync(async () =>
                {
                    using var response = await _env.Infrastructure.RabbitMqManagement.DeleteAsync($"api/users/{Uri.EscapeDataString(user)}");
                    return response.StatusCode;
                }, Teardown.Gone, $"deleting the broker user {user}");
        }
    }
}
