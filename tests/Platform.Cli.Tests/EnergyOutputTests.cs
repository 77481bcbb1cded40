using System.Text.Json;

namespace Platform.Cli.Tests;

/// <summary>
/// Energy and placement in the command line's output: jobs get, workers, network and workers placement, against
/// canned gateway answers; --json passes the fields through untouched.
/// </summary>
public sealed class EnergyOutputTests : IDisposable
{
    private const string JobJson = """
        {"id":"job_e","kernel":"vector-add","status":"completed","inputs":{},"params":{},"outputs":{"c":"bafkreic"},"cost":0.01,"progress":1,
         "attempts":[{"attemptId":"att_1","workerId":"wrk_1","status":"accepted","signature":"sig","joules":0.5812,"joulesEstimated":true}],
         "createdAt":"2026-01-02T03:04:05+00:00","completedAt":"2026-01-02T03:04:06+00:00",
         "statusReason":{"code":"completed","message":"Completed."},"energy":{"joules":0.5812,"gflop":5.3e-7,"joulesPerGflop":1096603.7,"estimated":true}}
        """;

    private const string WorkersJson = """
        [{"workerId":"wrk_1","operatorAccountId":"acc_op","region":"home","online":true,"slots":2,"active":0,"kernels":["vector-add"],
          "devices":[{"kind":"cpu","name":"Some CPU","backend":"simd","memoryMb":4096}],"gflopsPerKernel":{"vector-add":1.5},"backendPerKernel":{"vector-add":"simd"},
          "powerWatts":35,"powerMeasured":false,"notes":[],"reputation":1,"operatorStake":10,"publicKey":null,"lastSeenAt":"2026-01-02T03:04:05+00:00",
          "energy":{"jobs":12,"joules":6.96,"gflop":6.4e-6,"joulesPerJob":0.58,"joulesPerGflop":1087500,"measuredShare":0}},
         {"workerId":"wrk_2","operatorAccountId":"acc_op2","region":"home","online":true,"slots":1,"active":0,"kernels":["vector-add"],
          "devices":[],"gflopsPerKernel":{},"backendPerKernel":{},"powerWatts":35,"powerMeasured":false,"notes":[],"reputation":1,"operatorStake":0,
          "publicKey":null,"lastSeenAt":"2026-01-02T03:04:05+00:00","energy":{"jobs":0,"joules":0,"gflop":0,"joulesPerJob":null,"joulesPerGflop":null,"measuredShare":0}}]
        """;

    private const string NetworkJson = """
        {"workersOnline":2,"workersOffline":0,"regions":{"home":2},"devices":{"cpu":2},"slots":3,"activeAttempts":0,"load":0,"jobsQueued":0,"jobsPerMinute":1,
         "creditsMinted":1.5,"bytesPinned":2048,"blobsPinned":3,
         "verification":{"jobs":12,"extraAttempts":3,"overhead":0.25,"spotChecked":3,"mismatches":0},
         "energy":{"jobs":12,"joules":8.7,"gflop":6.4e-6,"joulesPerJob":0.725,"joulesPerGflop":1359375,"measuredShare":0.25}}
        """;

    private const string PlacementJson = """
        {"workerId":"wrk_2","online":true,"getsWork":false,"status":"Gets no work: its operator has staked 0 of the 10 credits workers need.",
         "reasons":[{"code":"stake_too_low","count":2,"message":"Its operator has staked 0 credits; workers get work once their operator has staked 10.",
                     "fix":"Stake 10 more credits: ./platform account stake 10"}],
         "recent":[{"at":"2026-01-02T03:04:05+00:00","kernel":"vector-add","code":"stake_too_low","message":"Its operator has staked 0 credits; workers get work once their operator has staked 10.",
                    "fix":"Stake 10 more credits: ./platform account stake 10","chosenWorkerId":"wrk_1"}],
         "trust":[{"kernel":"vector-add","streak":4,"checkProbability":0.25,"accepted":4,"checked":1,"mismatches":0}]}
        """;

    private readonly DirectoryInfo _home = Directory.CreateTempSubdirectory("platform-cli-energy-");
    private readonly CannedGateway _gateway = new(new Dictionary<string, string>
    {
        ["/v1/jobs/job_e"] = JobJson,
        ["/v1/jobs/job_p"] = JobJson.Replace("job_e", "job_p", StringComparison.Ordinal)
            .Replace("\"Completed.\"", "\"Completed: 1e+3 & the worker's 2e+3.\"", StringComparison.Ordinal),
        ["/v1/workers"] = WorkersJson,
        ["/v1/network"] = NetworkJson,
        ["/v1/workers/wrk_2/placement"] = PlacementJson,
    });

    public void Dispose()
    {
        _gateway.Dispose();
        _home.Delete(recursive: true);
    }

    private async Task<string> RunAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var env = new Dictionary<string, string?> { ["PLATFORM_URL"] = _gateway.Url, ["PLATFORM_KEY"] = "pk_test", ["HOME"] = _home.FullName };
        var code = await Cli.RunAsync(args, CliHost.Plain(stdout, stderr, env));
        Assert.True(code == 0, $"exit {code}: {stderr}");
        return stdout.ToString();
    }

    [Theory]
    [InlineData(0.5812, "0.581")]
    [InlineData(12.345, "12.3")]
    [InlineData(1096603.7, "1.1e6")]
    [InlineData(99999, "1e5")]
    [InlineData(0.00123, "1.23e-3")]
    [InlineData(0, "0")]
    public void Significant_keeps_three_digits_and_goes_scientific_outside_a_readable_range(double value, string expected) =>
        Assert.Equal(expected, Output.Significant(value));

    [Theory]
    [InlineData(0.5812, "0.581 J")]
    [InlineData(1234.5, "1.23 kJ")]
    [InlineData(3_100_000, "3.1 MJ")]
    public void Joules_take_the_unit_that_keeps_the_number_short(double value, string expected) => Assert.Equal(expected, Output.Joules(value));

    [Fact]
    public async Task Jobs_get_shows_the_energy_line_and_each_attempts_joules()
    {
        var output = await RunAsync("jobs", "get", "job_e");

        Assert.Matches(@"energy\s+0\.581 J \(estimated\), 1\.1e6 J/GFLOP\n", output);
        Assert.Matches(@"att_1\s+wrk_1\s+accepted\s+0\.581 J \(estimated\)", output);
    }

    [Fact]
    public async Task Workers_have_a_joules_per_gflop_column_with_a_dash_for_a_worker_without_accepted_work()
    {
        var output = await RunAsync("workers");

        Assert.Matches(@"stake\s+J/GFLOP\s+devices", output);
        Assert.Matches(@"wrk_1\s+acc_op\s+home\s+yes\s+2\s+0\s+1\.00\s+10\s+1\.09e6\s+cpu", output);
        Assert.Matches(@"wrk_2\s+acc_op2\s+home\s+yes\s+1\s+0\s+1\.00\s+0\s+-\s", output);
    }

    [Fact]
    public async Task Network_shows_energy_per_job_and_per_gflop_and_the_verification_overhead()
    {
        var output = await RunAsync("network");

        Assert.Matches(@"energy\s+0\.725 J per job, 1\.36e6 J/GFLOP over 12 jobs \(25% measured\)", output);
        Assert.Matches(@"verification\s+25\.0% extra attempts over the last 12 jobs \(3 spot-checked, 0 mismatches\)", output);
    }

    [Fact]
    public async Task Placement_shows_the_status_the_reason_with_its_fix_and_the_trust()
    {
        var output = await RunAsync("workers", "placement", "wrk_2");

        Assert.StartsWith("Gets no work: its operator has staked 0 of the 10 credits workers need.", output, StringComparison.Ordinal);
        Assert.Matches(@"stake_too_low\s+2\s+Its operator has staked 0 credits;.*Stake 10 more credits: \./platform account stake 10", output);
        Assert.Matches(@"vector-add\s+4\s+25%\s+1\s+0", output);
    }

    [Fact]
    public async Task Json_passes_the_energy_through_as_the_gateway_sent_it()
    {
        using var job = JsonDocument.Parse(await RunAsync("jobs", "get", "job_e", "--json"));
        using var network = JsonDocument.Parse(await RunAsync("network", "--json"));

        Assert.Equal(0.5812, job.RootElement.GetProperty("energy").GetProperty("joules").GetDouble());
        Assert.True(job.RootElement.GetProperty("energy").GetProperty("estimated").GetBoolean());
        Assert.Equal(1359375, network.RootElement.GetProperty("energy").GetProperty("joulesPerGflop").GetDouble());
        Assert.Equal(0.25, network.RootElement.GetProperty("verification").GetProperty("overhead").GetDouble());
    }

    [Fact]
    public async Task Json_writes_punctuation_as_it_is_not_escaped_for_a_web_page()
    {
        var job = await RunAsync("jobs", "get", "job_p", "--json");

        // The default encoder wrote "1e\u002B3 \u0026 the worker\u0027s".
        Assert.Contains("\"message\": \"Completed: 1e+3 & the worker's 2e+3.\"", job, StringComparison.Ordinal);
        Assert.DoesNotContain("\\u00", job, StringComparison.Ordinal);
    }
}
