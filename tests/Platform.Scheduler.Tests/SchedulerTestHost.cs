using Dapper;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts.Messages;
using Platform.Contracts.Signing;
using Platform.Hosting.Http;
using Platform.Scheduler.Jobs;
using Platform.Scheduler.Nodes;
using Platform.Scheduler.Placement;
using Platform.Scheduler.Verification;
using Platform.Scheduler.Workers;
using Platform.Testing;

namespace Platform.Scheduler.Tests;

/// <summary>The scheduler's consumers, dispatcher and verification on the MassTransit harness with a real Postgres.</summary>
public static class SchedulerTestHost
{
    /// <param name="configure">The scheduler's options for the test (over the defaults).</param>
    /// <param name="services">Registrations after the scheduler's own, to replace some of them.</param>
    public static Task<ConsumerTestHost> StartAsync(TestEnvironment env, Action<SchedulerOptions> configure, Action<IServiceCollection>? services = null) =>
        ConsumerTestHost.StartAsync(env, "scheduler", typeof(Program).Assembly, bus =>
        {
            bus.AddJobs();
            bus.AddWorkers();
            bus.AddNodeIntake();
        }, s =>
        {
            s.AddPlacement();
            s.AddVerification();
            s.AddInputCheck();
            s.Configure(configure);
            s.Configure<GatewayProofOptions>(g => g.GatewaySecret = env.GatewaySecret);
            services?.Invoke(s);
        });

    /// <summary>
    /// Registers the worker as its operator would through POST /v1/nodes (the key <see cref="TestWorkerKeys"/> holds
    /// for its id, the operator the announcement names), so the scheduler takes its messages.
    /// </summary>
    public static async Task RegisterAsync(this ConsumerTestHost host, WorkerOnline worker)
    {
        await using var connection = await host.Database.OpenConnectionAsync();
        await connection.ExecuteAsync(
            """
            insert into node_registrations (worker_id, operator_account_id, public_key, broker_user, registered_at, enrolled_at)
            values (@Worker, @Operator, @PublicKey, 'node-' || @Worker, now(), now()) on conflict do nothing
            """,
            new { Worker = worker.WorkerId.Value, Operator = worker.OperatorAccountId.Value, PublicKey = ResultSignature.ExportPublicKey(TestWorkerKeys.KeyOf(worker.WorkerId)) });
    }

    /// <summary>Registers the worker (<see cref="RegisterAsync"/>) and publishes its announcement.</summary>
    public static async Task AnnounceAsync(this ConsumerTestHost host, WorkerOnline worker)
    {
        await host.RegisterAsync(worker);
        await host.Harness.Bus.Publish(worker);
    }

    /// <summary>
    /// For tests whose workers announce themselves once and never beat: none of them is about liveness, so a
    /// worker stays alive (and its leases run) for however long a slow machine takes.
    /// </summary>
    public static void WorkersNeverBeat(SchedulerOptions o)
    {
        o.HeartbeatInterval = TimeSpan.FromMinutes(10);
        o.LeaseDuration = TimeSpan.FromMinutes(10);
        o.GracePeriod = TimeSpan.FromMinutes(30);
    }
}
