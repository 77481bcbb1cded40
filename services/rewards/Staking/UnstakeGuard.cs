using Dapper;
using MassTransit;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;

namespace Platform.Rewards.Staking;

/// <summary>What could still cost an operator its stake: results awaiting verification, penalties not yet applied here.</summary>
public sealed record Exposure(int UnverifiedAttempts, IReadOnlyList<string> PendingSlashes)
{
    public bool Clear => UnverifiedAttempts == 0 && PendingSlashes.Count == 0;
}

/// <summary>
/// Asks the scheduler, which alone knows which results are still being verified and which attempts it penalized,
/// before a stake is released: a cheater whose first results are unchecked, or whose slash is still on its way
/// (in the scheduler's outbox or this service's queue), must not take its stake out first.
/// </summary>
public sealed class UnstakeGuard(IRequestClient<GetOperatorExposure> scheduler, NpgsqlDataSource db, IOptions<StakingOptions> options, TimeProvider clock)
{
    /// <summary>The operator's exposure, or null when the scheduler did not answer within <see cref="StakingOptions.ExposureTimeout"/>.</summary>
    public async Task<Exposure?> ExposureAsync(string operatorAccount, CancellationToken ct)
    {
        OperatorExposure answer;
        try
        {
            var response = await scheduler.GetResponse<OperatorExposure>(
                new GetOperatorExposure { OperatorAccountId = AccountId.From(operatorAccount), OccurredAt = clock.GetUtcNow() },
                ct, RequestTimeout.After(ms: (int)options.Value.ExposureTimeout.TotalMilliseconds));
            answer = response.Message;
        }
        catch (Exception ex) when (ex is RequestTimeoutException or RequestFaultException)
        {
            return null;
        }

        // A penalty is applied once its attempt has a row in penalties (even when there was no stake to slash).
        var penalized = answer.PenalizedAttemptIds.Select(a => a.Value).Distinct().ToArray();
        var applied = penalized.Length == 0 ? [] : (await QueryAppliedAsync(penalized, ct)).ToHashSet();
        return new Exposure(answer.UnverifiedAttempts, penalized.Where(a => !applied.Contains(a)).ToList());
    }

    private async Task<IEnumerable<string>> QueryAppliedAsync(string[] attempts, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        return await connection.QueryAsync<string>(new CommandDefinition(
            "select attempt_id from penalties where attempt_id = any(@attempts)", new { attempts }, cancellationToken: ct));
    }
}
