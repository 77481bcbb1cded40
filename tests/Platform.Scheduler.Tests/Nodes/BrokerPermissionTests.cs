using System.Text;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Messages;
using Platform.Contracts.Signing;
using Platform.Scheduler.Nodes;
using Platform.Testing;

namespace Platform.Scheduler.Tests.Nodes;

/// <summary>The scheduler on the real broker with two enrolled nodes, A and B; A's login in a rogue's hands.</summary>
public sealed class TwoNodesFixture : IAsyncLifetime
{
    private TestEnvironment _env = null!;

    public InProcessScheduler Scheduler { get; private set; } = null!;
    public InProcessScheduler.Node A { get; } = InProcessScheduler.Node.New();
    public InProcessScheduler.Node B { get; } = InProcessScheduler.Node.New();
    public AccountId OperatorA { get; } = AccountId.New();
    public AccountId OperatorB { get; } = AccountId.New();
    public NodeEnrollmentResponse EnrolledA { get; private set; } = null!;
    public NodeEnrollmentResponse EnrolledB { get; private set; } = null!;
    public RogueNode Rogue { get; private set; } = null!;
    public RogueNode HonestB { get; private set; } = null!;

    /// <summary>Message-type exchanges of the services, as their buses declare them.</summary>
    public static readonly string[] ServiceMessages = ["JobCompleted", "WorkerPenalized", "StakeChanged", "JobSubmitted"];

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("scheduler-broker");
        Scheduler = InProcessScheduler.Start(_env);
        // The services' exchanges exist on a running network (rewards and the gateway publish them): a refusal here
        // must be the broker's permission check, not a missing exchange.
        foreach (var name in ServiceMessages)
        {
            using var put = await _env.Infrastructure.RabbitMqManagement.PutAsync(
                $"api/exchanges/{Uri.EscapeDataString(_env.Name)}/{Uri.EscapeDataString(ServiceExchange(name))}",
                new StringContent("""{"type":"fanout","durable":true}""", Encoding.UTF8, "application/json"));
            put.EnsureSuccessStatusCode();
        }
        EnrolledA = await Scheduler.EnrollAsync(OperatorA, A);
        EnrolledB = await Scheduler.EnrollAsync(OperatorB, B);
        Rogue = await RogueNode.ConnectAsync(EnrolledA.Broker);
        HonestB = await RogueNode.ConnectAsync(EnrolledB.Broker);
    }

    /// <summary>The exchange the services' buses use for the message: its bundle's for a bundled event (<see cref="BundledAttribute"/>).</summary>
    public static string ServiceExchange(string message)
    {
        var type = typeof(JobSubmitted).Assembly.GetType($"Platform.Contracts.Messages.{message}")!;
        var wire = BundledAttribute.IsOn(type) ? typeof(Bundle<>).MakeGenericType(type) : type;
        return new MassTransit.RabbitMqTransport.RabbitMqMessageNameFormatter().GetMessageName(wire).ToString();
    }

    public async Task DisposeAsync()
    {
        try
        {
            try
            {
                await Rogue.DisposeAsync();
            }
            finally
            {
                await HonestB.DisposeAsync();
            }
        }
        finally
        {
            try
            {
                await Scheduler.DisposeAsync();
            }
            finally
            {
                await _env.DisposeAsync();
            }
        }
    }
}

/// <summary>
/// A node's own broker login, on the real broker: it can publish only to its own exchange (which the scheduler
/// reads, and believes only about that node), declare and read only its own names, and nothing else. Every
/// refusal is the broker's 403 ACCESS_REFUSED on the node's channel.
/// </summary>
public sealed class BrokerPermissionTests(TwoNodesFixture f) : IClassFixture<TwoNodesFixture>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_node_cannot_publish_any_service_message()
    {
        var forged = new Dictionary<string, object>
        {
            ["JobCompleted"] = new { jobId = JobId.New().Value },
            ["WorkerPenalized"] = new { workerId = f.B.WorkerId.Value, operatorAccountId = f.OperatorB.Value },
            ["StakeChanged"] = new { operatorAccountId = f.OperatorA.Value, staked = 1_000_000, version = long.MaxValue },
            ["JobSubmitted"] = new { jobId = JobId.New().Value },
        };
        foreach (var name in TwoNodesFixture.ServiceMessages)
            AssertRefused(await f.Rogue.TryPublishAsync(TwoNodesFixture.ServiceExchange(name), forged[name]), $"publish {name}");
        // Nor around them: the default exchange straight into a service's queue, the intake's exchange, B's exchange.
        AssertRefused(await f.Rogue.TryPublishAsync("", forged["WorkerPenalized"], routingKey: "rewards-worker-penalized"), "publish to the default exchange");
        AssertRefused(await f.Rogue.TryPublishAsync(NodeNames.Intake, forged["JobCompleted"]), "publish to the intake");
        AssertRefused(await f.Rogue.TryPublishAsync(f.EnrolledB.Broker.Exchange, forged["JobCompleted"]), "publish to node B's exchange");
    }

    [Fact]
    public async Task A_node_cannot_declare_delete_or_bind_anything_but_its_own_names()
    {
        var b = f.EnrolledB.Broker;
        AssertRefused(await f.Rogue.TryDeclareQueueAsync("scheduler-job-submitted"), "declare a scheduler queue");
        AssertRefused(await f.Rogue.TryDeclareQueueAsync(b.AssignmentQueue), "declare B's queue");
        AssertRefused(await f.Rogue.TryDeclareQueueAsync($"worker-{f.A.WorkerId}x"), "declare a name that only starts like its own");
        AssertRefused(await f.Rogue.TryDeclareExchangeAsync(b.Exchange), "declare B's exchange");
        AssertRefused(await f.Rogue.TryDeclareExchangeAsync(TwoNodesFixture.ServiceExchange("JobCompleted")), "declare a service exchange");
        AssertRefused(await f.Rogue.TryDeleteExchangeAsync(NodeNames.Intake), "delete the intake exchange");
        AssertRefused(await f.Rogue.TryDeleteExchangeAsync(TwoNodesFixture.ServiceExchange("JobSubmitted")), "delete a service exchange");

        // Its own names it may declare; binding them to what others send is refused.
        var own = $"node-{f.A.WorkerId}-tap";
        Assert.Null(await f.Rogue.TryDeclareQueueAsync(own));
        AssertRefused(await f.Rogue.TryBindQueueAsync(own, TwoNodesFixture.ServiceExchange("JobSubmitted")), "bind to every tenant's JobSubmitted");
        AssertRefused(await f.Rogue.TryBindQueueAsync(own, b.Exchange), "bind to B's exchange");
        AssertRefused(await f.Rogue.TryBindQueueAsync(own, b.AssignmentQueue), "bind to B's assignment exchange");
        AssertRefused(await f.Rogue.TryBindQueueAsync(own, NodeNames.Intake), "bind to the intake");
        AssertRefused(await f.Rogue.TryBindExchangeAsync(NodeNames.Intake, f.EnrolledA.Broker.Exchange), "bind its exchange into the intake itself");
    }

    [Fact]
    public async Task A_node_reads_nothing_but_its_own_queues()
    {
        AssertRefused(await f.Rogue.TryConsumeAsync(f.EnrolledB.Broker.AssignmentQueue), "consume B's assignments");
        AssertRefused(await f.Rogue.TryGetAsync(f.EnrolledB.Broker.ControlQueue), "get B's control messages");
        AssertRefused(await f.Rogue.TryConsumeAsync(NodeNames.Intake), "consume the intake");
        AssertRefused(await f.Rogue.TryConsumeAsync("scheduler-job-submitted"), "consume a scheduler queue");
    }

    [Fact]
    public async Task A_node_gets_its_assignments_and_is_credited_to_its_registered_operator_whatever_it_says()
    {
        // A names someone else as its operator: the registration decides.
        await f.Rogue.SendAsync(Online(f.A, AccountId.New(), "vector-add"));
        var @operator = await Eventually.UntilAsync(
            () => f.Scheduler.QueryAsync<string?>("select operator_account_id from workers where id = @id", new { id = f.A.WorkerId.Value }),
            o => o is not null, Deadline, "A's WorkerOnline through its exchange reaches the scheduler");
        Assert.Equal(f.OperatorA.Value, @operator);

        var job = JobId.New();
        var bus = f.Scheduler.Services.GetRequiredService<IBus>();
        await bus.Publish(Bundle.Of(new JobSubmitted
        {
            JobId = job,
            ClientAccountId = AccountId.New(),
            Spec = new JobSpec
            {
                Kernel = "vector-add",
                Inputs = new Dictionary<string, Cid> { ["a"] = Cid.Compute("a"u8), ["b"] = Cid.Compute("b"u8) },
                Replicas = 1,
                Requirements = new JobRequirements(),
            },
            EstimatedGflop = 1,
            OccurredAt = DateTimeOffset.UtcNow,
        }));
        await bus.Publish(Bundle.Of(new JobFunded { JobId = job, Escrowed = 1m, OccurredAt = DateTimeOffset.UtcNow }));

        var assigned = await Eventually.UntilAsync(() => f.Rogue.TakeAsync(f.EnrolledA.Broker.AssignmentQueue),
            m => m is { } taken && taken.Message.GetProperty("jobId").GetString() == job.Value, Deadline, "the AssignJob on A's own queue");
        Assert.Contains("urn:message:Platform.Contracts.Messages:AssignJob", assigned!.Value.MessageType);

        // Its start and its result, through its own exchange, reach the batch consumers and complete the job.
        var attempt = AttemptId.From(assigned.Value.Message.GetProperty("attemptId").GetString()!);
        var started = new AttemptStarted { JobId = job, AttemptId = attempt, WorkerId = f.A.WorkerId, OccurredAt = DateTimeOffset.UtcNow };
        await f.Rogue.SendAsync(started with { Signature = WorkerMessageSignature.Sign(f.A.Key, WorkerMessageSignature.Payload(started)) });
        await f.Rogue.SendAsync(Result(f.A, job, attempt));
        await Eventually.UntilAsync(() => f.Scheduler.QueryAsync<string?>("select status from jobs where id = @id", new { id = job.Value }),
            s => s == "completed", Deadline, "the job completed by A's result through A's exchange");
    }

    [Fact]
    public async Task A_result_for_another_node_through_ones_own_exchange_is_dropped_and_counted()
    {
        // Results are consumed in batches: each message of a batch is judged by the exchange it came through.
        var before = await f.Scheduler.RejectedAsync(RejectedNodeMessages.WrongExchange);
        await f.Rogue.SendAsync(Result(f.B, JobId.New(), AttemptId.New()));

        await Eventually.UntilAsync(async () => await f.Scheduler.RejectedAsync(RejectedNodeMessages.WrongExchange) > before, Deadline,
            "B's result through A's exchange counted as wrong_exchange on GET /v1/network");
    }

    [Fact]
    public async Task A_message_for_another_node_through_ones_own_exchange_is_dropped_and_counted()
    {
        await f.HonestB.SendAsync(Online(f.B, f.OperatorB, "gemm"));
        var seen = await Eventually.UntilAsync(
            () => f.Scheduler.QueryAsync<DateTime?>("select last_seen_at from workers where id = @id", new { id = f.B.WorkerId.Value }),
            s => s is not null, Deadline, "B online");
        var before = await f.Scheduler.RejectedAsync(RejectedNodeMessages.WrongExchange);

        // B's heartbeat, even correctly signed by B (replayed or stolen), does not pass through A's exchange.
        var beat = new WorkerHeartbeat { WorkerId = f.B.WorkerId, ActiveAttempts = 0, Attempts = [], OccurredAt = DateTimeOffset.UtcNow.AddMinutes(1) };
        await f.Rogue.SendAsync(beat with { Signature = WorkerMessageSignature.Sign(f.B.Key, WorkerMessageSignature.Payload(beat)) });

        await Eventually.UntilAsync(async () => await f.Scheduler.RejectedAsync(RejectedNodeMessages.WrongExchange) > before, Deadline,
            "the heartbeat counted as wrong_exchange on GET /v1/network");
        Assert.Equal(seen, await f.Scheduler.QueryAsync<DateTime?>("select last_seen_at from workers where id = @id", new { id = f.B.WorkerId.Value }));
    }

    [Fact]
    public async Task A_message_signed_with_another_key_is_dropped_and_counted()
    {
        var before = await f.Scheduler.RejectedAsync(RejectedNodeMessages.KeyMismatch);
        using var stranger = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var beat = new WorkerHeartbeat { WorkerId = f.A.WorkerId, ActiveAttempts = 0, Attempts = [], OccurredAt = DateTimeOffset.UtcNow };

        await f.Rogue.SendAsync(beat with { Signature = WorkerMessageSignature.Sign(stranger, WorkerMessageSignature.Payload(beat)) });

        await Eventually.UntilAsync(async () => await f.Scheduler.RejectedAsync(RejectedNodeMessages.KeyMismatch) > before, Deadline,
            "the heartbeat counted as key_mismatch on GET /v1/network");
    }

    /// <summary>A result of the node's, signed with its key.</summary>
    private static AttemptCompleted Result(InProcessScheduler.Node node, JobId job, AttemptId attempt)
    {
        var outputs = new Dictionary<string, Cid> { ["c"] = Cid.Compute("c"u8) };
        return new AttemptCompleted
        {
            JobId = job,
            AttemptId = attempt,
            WorkerId = node.WorkerId,
            Outputs = outputs,
            Metrics = new AttemptMetrics { DurationMs = 1, Gflop = 1, Device = "cpu" },
            Signature = ResultSignature.Sign(node.Key, job, attempt, outputs),
            OccurredAt = DateTimeOffset.UtcNow,
        };
    }

    private static WorkerOnline Online(InProcessScheduler.Node node, AccountId claimedOperator, string kernel)
    {
        var online = new WorkerOnline
        {
            WorkerId = node.WorkerId,
            OperatorAccountId = claimedOperator,
            Region = "local",
            Slots = 1,
            Kernels = [kernel],
            Devices = [new DeviceInfo { Kind = "cpu", Name = "test", Backend = "simd", MemoryMb = 1024 }],
            GflopsPerKernel = new Dictionary<string, double> { [kernel] = 10 },
            PowerWatts = 30,
            OccurredAt = DateTimeOffset.UtcNow,
        };
        return TestWorkerKeys.SignedWith(node.Key, online);
    }

    private static void AssertRefused(RogueNode.Refusal? refusal, string what)
    {
        Assert.True(refusal is not null, $"{what}: the broker allowed it");
        Assert.True(refusal.AccessRefused, $"{what}: expected 403 ACCESS_REFUSED, got {refusal}");
    }
}
