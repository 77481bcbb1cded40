using Microsoft.Extensions.DependencyInjection;
using Platform.Scheduler.Jobs;
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
        }, s =>
        {
            s.AddPlacement();
            s.AddVerification();
            s.Configure(configure);
            services?.Invoke(s);
        });

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
