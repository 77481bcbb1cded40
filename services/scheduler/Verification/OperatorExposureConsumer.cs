using Dapper;
using MassTransit;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Messages;

namespace Platform.Scheduler.Verification;

/// <summary>
/// Answers rewards before it releases an operator's stake: how many of the operator's results still await
/// verification, and which of its attempts were penalized, so rewards can refuse the unstake until they are
/// checked and every slash has been applied. Read-only; the operator is the one the scheduler recorded on the
/// attempt, never what a message says.
/// </summary>
public sealed class OperatorExposureConsumer(NpgsqlDataSource db) : IConsumer<GetOperatorExposure>
{
    public async Task Consume(ConsumeContext<GetOperatorExposure> context)
    {
        var ct = context.CancellationToken;
        var operatorAccount = context.Message.OperatorAccountId;
        await using var connection = await db.OpenConnectionAsync(ct);
        // A submitted result waits for other replicas, a spot check or a tie-break; one left behind by a job that
        // has since ended (failed, cancelled) will never be judged, and holds nothing back.
        var unverified = await connection.ExecuteScalarAsync<int>(new CommandDefinition(
            """
            select count(*)::int from attempts a join jobs j on j.id = a.job_id
            where a.status = 'submitted' and a.operator_account_id = @Operator
              and j.status not in ('completed', 'failed', 'cancelled', 'rejected')
            """, new { Operator = operatorAccount.Value }, cancellationToken: ct));
        // Every rejected attempt was penalized: verification rejects a result and sends WorkerPenalized together.
        var penalized = await connection.QueryAsync<string>(new CommandDefinition(
            "select id from attempts where status = 'rejected' and operator_account_id = @Operator order by id",
            new { Operator = operatorAccount.Value }, cancellationToken: ct));
        await context.RespondAsync(new OperatorExposure
        {
            OperatorAccountId = operatorAccount,
            UnverifiedAttempts = unverified,
            PenalizedAttemptIds = penalized.Select(AttemptId.From).ToList(),
        });
    }
}
