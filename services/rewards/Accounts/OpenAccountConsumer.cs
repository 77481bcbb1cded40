using Dapper;
using MassTransit;
using Npgsql;
using Platform.Contracts.Messages;
using Platform.Rewards.Ledger;

namespace Platform.Rewards.Accounts;

/// <summary>Opens the ledger account of a new API account and grants its starting credits, once per account.</summary>
public sealed class OpenAccountConsumer(NpgsqlDataSource db) : IConsumer<OpenAccount>
{
    public async Task Consume(ConsumeContext<OpenAccount> context)
    {
        var message = context.Message;
        var ct = context.CancellationToken;
        if (message.InitialCredits < 0 || message.Role is not ("client" or "operator" or "admin"))
            throw new ArgumentException("invalid OpenAccount request");
        var account = message.AccountId.Value;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await CreditLedger.EnsureAccountAsync(tx, account, message.Role, ct);
        await CreditLedger.PostAsync(tx, $"grant:{account}", null,
        [
            new Posting(CreditLedger.Mint, "grant", -CreditLedger.Round(message.InitialCredits)),
            new Posting(account, "grant", CreditLedger.Round(message.InitialCredits)),
        ], ct);
        var balance = await connection.ExecuteScalarAsync<decimal>(new CommandDefinition(
            "select balance from accounts where id = @account", new { account }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        await context.RespondAsync(new AccountOpened { AccountId = message.AccountId, Balance = balance });
    }
}
