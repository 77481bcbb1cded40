using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Platform.Scheduler.Placement;
using Platform.Scheduler.Workers;

namespace Platform.Scheduler.Tests.Jobs;

/// <summary>
/// GET /v1/workers shows, per worker, the backend each kernel runs on and what calibration measured on every
/// backend (the harness fails the test if a consumer threw).
/// </summary>
public sealed class WorkerBackendRatesTests() : SchedulerHarnessTest("scheduler-backend-rates")
{
    [Fact]
    public async Task The_workers_view_serves_the_rates_of_every_backend_the_node_announced()
    {
        await StartAsync();
        var worker = await WorkerAsync(4, shape: w => w with
        {
            BackendPerKernel = new Dictionary<string, string> { ["vector-add"] = "simd" },
            GflopsPerBackend = new Dictionary<string, IReadOnlyDictionary<string, double>>
            {
                ["simd"] = new Dictionary<string, double> { ["vector-add"] = 4 },
                ["ilgpu"] = new Dictionary<string, double> { ["vector-add"] = 0.004 },
            },
        });

        var views = await NetworkApi.ListWorkers(_host.Database, _host.Services.GetRequiredService<IOptions<SchedulerOptions>>(), CancellationToken.None);

        var view = views.Value!.Single(w => w.WorkerId == worker.WorkerId.Value);
        Assert.Equal("simd", view.BackendPerKernel["vector-add"]);
        Assert.Equal(4, view.GflopsPerBackend!["simd"]["vector-add"]);
        Assert.Equal(0.004, view.GflopsPerBackend["ilgpu"]["vector-add"]);
    }

    [Fact]
    public async Task A_worker_that_announces_no_backend_rates_shows_none()
    {
        await StartAsync();
        var worker = await WorkerAsync(4);

        var views = await NetworkApi.ListWorkers(_host.Database, _host.Services.GetRequiredService<IOptions<SchedulerOptions>>(), CancellationToken.None);

        Assert.Empty(views.Value!.Single(w => w.WorkerId == worker.WorkerId.Value).GflopsPerBackend!);
    }
}
