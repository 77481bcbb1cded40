using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Messages;
using Platform.Scheduler.Placement;
using Platform.Scheduler.Workers;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Workers;

/// <summary>
/// The history the dashboard charts (GET /v1/network/history, GET /v1/workers/{id}/history): samples taken by
/// <see cref="NetworkSampler"/> from the scheduler's real tables, after a real job went through the harness.
/// </summary>
public sealed class NetworkHistoryTests() : SchedulerHarnessTest("scheduler-history")
{
    // One interval is longer than the whole test, so a sample taken after the job covers its completion.
    private static readonly TimeSpan Interval = TimeSpan.FromHours(1);

    [Fact]
    public async Task A_sample_counts_its_intervals_completed_jobs_and_their_latency_the_queue_and_each_workers_speed_and_energy()
    {
        var started = DateTimeOffset.UtcNow;
        await StartAsync(o => o.HistoryInterval = Interval);
        var worker = await WorkerAsync(4);
        var done = await SubmitAsync();
        await ReportAsync(await AssignedAsync(done.JobId), new Dictionary<string, Cid> { ["c"] = Cid.Compute("c"u8) });
        await CompletedAsync(done.JobId);
        // A job no worker fits waits in the queue.
        var waiting = await SubmitAsync(requirements: new JobRequirements { Region = "nowhere" });
        await Eventually.UntilAsync(async () => await QueryAsync<string>("select status from jobs where id = @id", new { id = waiting.JobId.Value }) == "queued",
            TimeSpan.FromSeconds(30), "the unplaceable job to be queued");
        // What the scheduler measured of the worker (its speed samples: as many as placement needs to believe them, and
        // for another kernel too few) and the checked energy of its work so far.
        await ExecuteAsync(
            """
            insert into worker_speed (worker_id, kernel, samples, rates, updated_at) values (@id, 'vector-add', 5, '{6, 2, 4, 9, 1}', now())
            on conflict (worker_id, kernel) do update set rates = excluded.rates;
            insert into worker_speed (worker_id, kernel, samples, rates, updated_at) values (@id, 'matmul', 2, '{50, 70}', now());
            insert into worker_energy (worker_id, kernel, attempts, measured_attempts, joules, gflop, updated_at) values (@id, 'matmul', 1, 0, 5, 1, now())
            """, new { id = worker.WorkerId.Value });

        var sampler = ActivatorUtilities.CreateInstance<NetworkSampler>(_host.Services);
        // Whole seconds, as Postgres stores them exactly (it keeps microseconds, not .NET's ticks).
        var now = DateTimeOffset.UtcNow;
        var first = new DateTimeOffset(now.UtcTicks - (now.UtcTicks % TimeSpan.TicksPerSecond), TimeSpan.Zero).AddSeconds(1);
        await sampler.SampleAsync(first, CancellationToken.None);
        // A second instance sampling the same instant writes nothing: schedulers share the samples.
        await sampler.SampleAsync(first, CancellationToken.None);
        // Between the two samples the worker does 10 GFLOP more for 30 J: 3 J/GFLOP in the second interval.
        await ExecuteAsync("update worker_energy set joules = joules + 30, gflop = gflop + 10 where worker_id = @id", new { id = worker.WorkerId.Value });
        var second = first + Interval;
        await sampler.SampleAsync(second, CancellationToken.None);

        var network = Assert.IsType<Ok<NetworkHistoryView>>((await NetworkHistoryAsync(minutes: 60)).Result).Value!;
        Assert.Equal(3600, network.IntervalSeconds);
        Assert.Equal([first, second], network.Samples.Select(s => s.At));
        var sample = network.Samples[0];
        Assert.Equal((1, 1, 0, 1, 1), (sample.Completed, sample.Queued, sample.Active, sample.Slots, sample.Online));
        Assert.Equal(1 / 60.0, sample.JobsPerMinute, 9);
        // One job: its median is its 99th percentile, its latency at most the test's own time so far.
        Assert.NotNull(sample.LatencyP50Ms);
        Assert.InRange(sample.LatencyP50Ms.Value, 0, (DateTimeOffset.UtcNow - started).TotalMilliseconds);
        Assert.Equal(sample.LatencyP50Ms, sample.LatencyP99Ms);
        // The job completed before the second interval began.
        Assert.Equal((0, (double?)null), (network.Samples[1].Completed, network.Samples[1].LatencyP50Ms));

        var history = Assert.IsType<Ok<WorkerHistoryView>>((await WorkerHistoryAsync(worker.WorkerId.Value, minutes: 60)).Result).Value!;
        Assert.Equal([first, second], history.Samples.Select(s => s.At));
        Assert.Equal(4, history.Samples[0].GflopsPerKernel["vector-add"]); // the median of 6, 2, 4, 9 and 1
        Assert.False(history.Samples[0].GflopsPerKernel.ContainsKey("matmul")); // two samples: not believed yet
        Assert.Null(history.Samples[0].JoulesPerGflop); // no sample before it to subtract
        Assert.Equal(3, history.Samples[1].JoulesPerGflop);
    }

    [Fact]
    public async Task A_window_out_of_range_is_a_400_and_an_unknown_worker_a_404()
    {
        await StartAsync(o =>
        {
            o.HistoryInterval = TimeSpan.FromMinutes(1);
            o.HistoryRetention = TimeSpan.FromDays(2);
        });
        // A day of one-minute samples is the most one answer holds.
        Assert.IsType<Ok<NetworkHistoryView>>((await NetworkHistoryAsync(minutes: NetworkHistory.MaxSamples)).Result);
        foreach (var minutes in new[] { 0, -5, NetworkHistory.MaxSamples + 1 })
        {
            var problem = Assert.IsType<ProblemHttpResult>((await NetworkHistoryAsync(minutes)).Result);
            Assert.Equal(400, problem.StatusCode);
            Assert.Contains("between 1 and 1440", problem.ProblemDetails.Detail);
        }

        var unknown = Assert.IsType<ProblemHttpResult>((await WorkerHistoryAsync("no-such-worker", minutes: 60)).Result);
        Assert.Equal(404, unknown.StatusCode);
    }

    private Task<Results<Ok<NetworkHistoryView>, ProblemHttpResult>> NetworkHistoryAsync(int? minutes) =>
        NetworkHistory.GetNetwork(minutes, _host.Database, _host.Services.GetRequiredService<IOptions<SchedulerOptions>>(), TimeProvider.System, CancellationToken.None);

    private Task<Results<Ok<WorkerHistoryView>, ProblemHttpResult>> WorkerHistoryAsync(string id, int? minutes) =>
        NetworkHistory.GetWorker(id, minutes, _host.Database, _host.Services.GetRequiredService<IOptions<SchedulerOptions>>(), TimeProvider.System, CancellationToken.None);
}
