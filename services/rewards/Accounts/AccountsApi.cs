using Dapper;
using MassTransit;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using Platform.Hosting.Http;

namespace Platform.Rewards.Accounts;

public sealed record AccountResponse(string AccountId, string Role, decimal Balance, decimal Escrowed, decimal Earned, decimal Staked);

public static class AccountsApi
{
    /// <summary>Set by the gateway from the authenticated key.</summary>
    public const string AccountHeader = "X-Platform-Account";

    public static IBusRegistrationConfigurator AddAccounts(this IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<OpenAccountConsumer>();
        return bus;
    }

    public static RouteGroupBuilder MapAccounts(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/account").WithTags("Account");
        group.MapGet("/", GetAccount);
        return group;
    }

    private const string AccountQuery = """
        select a.id as AccountId, a.kind as Role, a.balance as Balance,
               coalesce((select sum(e.amount) from escrows e where e.client_account_id = a.id and e.status = 'held'), 0) as Escrowed,
               coalesce((select sum(p.amount) from postings p where p.account_id = a.id and p.kind in ('payout', 'mint')), 0) as Earned,
               0::numeric as Staked
        from accounts a where a.id = @account
        """;

    internal static async Task<Results<Ok<AccountResponse>, ProblemHttpResult>> GetAccount(HttpContext http, NpgsqlDataSource db, CancellationToken ct)
    {
        var account = http.Request.Headers[AccountHeader].ToString();
        await using var connection = await db.OpenConnectionAsync(ct);
        var row = await connection.QuerySingleOrDefaultAsync<AccountResponse>(new CommandDefinition(AccountQuery, new { account }, cancellationToken: ct));
        return row is null
            ? Problems.NotFound("account-not-found", "Account not found", "this account has no ledger entries yet")
            : TypedResults.Ok(row);
    }
}
