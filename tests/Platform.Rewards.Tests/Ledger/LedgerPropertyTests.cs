using FsCheck;
using FsCheck.Fluent;
using Microsoft.FSharp.Core;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Xunit.Abstractions;
using static Platform.Rewards.Tests.RewardsTestHost;

namespace Platform.Rewards.Tests.Ledger;

/// <summary>
/// Random sequences of escrow, settle (payouts and mints), refund, stake and slash, run through the rewards
/// consumers on a real Postgres: after every sequence every transaction sums to zero, all postings sum to zero,
/// and no account but sys:mint is below zero.
/// </summary>
public sealed class LedgerPropertyTests(ITestOutputHelper output) : IAsyncLifetime
{
    // Fixed, so a failure replays exactly; FsCheck prints it again with any counterexample.
    private const ulong Seed = 20261127;
    private const ulong Gamma = 1442695040888963407;
    private const int Sequences = 60;
    private const int Jobs = 4;

    private RewardsTestHost _rewards = null!;

    public async Task InitializeAsync() => _rewards = await RewardsTestHost.StartAsync("rewards-ledger-property");

    public async Task DisposeAsync() => await _rewards.DisposeAsync();

    public abstract record Op;
    public sealed record Submit(int Job, int Gflop, int Replicas, int? MaxPrice) : Op;
    public sealed record Complete(int Job, int Gflop, int Paid, bool SpotCheck, int Operator, int? Joules) : Op;
    public sealed record Fail(int Job) : Op;
    public sealed record Cancel(int Job) : Op;
    public sealed record Stake(int Operator, int Amount) : Op;
    public sealed record Slash(int Operator) : Op;
    public sealed record Story(int ClientCredits, int[] OperatorCredits, Op[] Ops);

    private static Gen<Op> Ops()
    {
        var job = Gen.Choose(0, Jobs - 1);
        var op = Gen.Choose(0, 1);
        var submit = from j in job
                     from g in Gen.Choose(1, 60)
                     from r in Gen.Choose(1, 3)
                     from max in Gen.Elements<int?>(null, null, 20, 100)
                     select (Op)new Submit(j, g, r, max);
        var complete = from j in job
                       from g in Gen.Choose(0, 80)
                       from paid in Gen.Choose(1, 3)
                       from spot in Gen.Elements(false, false, true)
                       from o in op
                       from joules in Gen.Elements<int?>(null, 10, 100, 1000)
                       select (Op)new Complete(j, g, paid, spot, o, joules);
        return Gen.Frequency(
            (4, submit),
            (3, complete),
            (1, job.Select(j => (Op)new Fail(j))),
            (1, job.Select(j => (Op)new Cancel(j))),
            (2, from o in op from a in Gen.Choose(1, 60) select (Op)new Stake(o, a)),
            (2, op.Select(o => (Op)new Slash(o))));
    }

    private static Gen<Story> Stories() =>
        from client in Gen.Choose(0, 150)
        from operators in Gen.Choose(0, 80).ArrayOf(2)
        from count in Gen.Choose(1, 14)
        from ops in Ops().ArrayOf(count)
        select new Story(client, operators, ops);

    [Fact]
    public void Random_ledger_stories_keep_credits_conserved_and_balances_non_negative()
    {
        output.WriteLine($"FsCheck seed {Seed}, gamma {Gamma}, {Sequences} sequences");
        var property = Prop.ForAll(Arb.From(Stories()), story =>
        {
            // FsCheck's properties are synchronous; the story runs on the thread pool, away from xunit's context.
            Task.Run(() => RunAsync(story)).GetAwaiter().GetResult();
            return true;
        });
        Check.One(Config.QuickThrowOnFailure
            .WithMaxTest(Sequences)
            .WithReplay(FSharpOption<Replay>.Some(new Replay(new Rnd(Seed, Gamma), FSharpOption<int>.None))), property);
    }

    private async Task RunAsync(Story story)
    {
        var client = await _rewards.OpenAsync("client", story.ClientCredits);
        var operators = new[] { await _rewards.OpenAsync("operator", story.OperatorCredits[0]), await _rewards.OpenAsync("operator", story.OperatorCredits[1]) };
        var jobs = Enumerable.Range(0, Jobs).Select(_ => (JobSubmitted?)null).ToArray();
        var ids = Enumerable.Range(0, Jobs).Select(_ => JobId.New()).ToArray();
        foreach (var op in story.Ops)
        {
            switch (op)
            {
                case Submit s:
                    // A second submission of the same job is a redelivery: the spec is the first one's.
                    jobs[s.Job] ??= Submitted(client, s.Gflop, s.Replicas, s.MaxPrice) with { JobId = ids[s.Job] };
                    await _rewards.PublishAsync(jobs[s.Job]!);
                    break;
                case Complete c when jobs[c.Job] is { } job:
                    var attempts = Enumerable.Range(0, c.Paid)
                        .Select(i => Attempt(operators[(c.Operator + i) % 2], c.Gflop, c.Joules))
                        .Concat(c.SpotCheck ? [Attempt(operators[1 - c.Operator], c.Gflop, c.Joules, spotCheck: true)] : [])
                        .ToArray();
                    await _rewards.PublishAsync(Completed(job, attempts));
                    break;
                case Complete:
                    break; // Completion of a job rewards never saw: the consumer retries until it arrives; not this property.
                case Fail f:
                    await _rewards.PublishAsync(new JobFailed { JobId = ids[f.Job], ClientAccountId = client, Reason = "input_invalid", Detail = "x", OccurredAt = DateTimeOffset.UtcNow });
                    break;
                case Cancel c:
                    await _rewards.PublishAsync(new JobCancelled { JobId = ids[c.Job], ClientAccountId = client, Reason = "cancelled_by_client", OccurredAt = DateTimeOffset.UtcNow });
                    break;
                case Stake s:
                    await _rewards.StakeAsync(operators[s.Operator], s.Amount);
                    break;
                case Slash s:
                    await _rewards.PublishAsync(Penalized(operators[s.Operator]));
                    break;
            }
        }
        await _rewards.AssertLedgerBalancedAsync();
    }
}
