using Dapper;
using MassTransit;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using Platform.Contracts;
using Platform.Contracts.Api;
using Platform.Contracts.Messages;
using Platform.Gateway.Auth;
using Platform.Hosting.Http;

namespace Platform.Gateway.Accounts;

public static class AccountsApi
{
    public static IBusRegistrationConfigurator AddAccounts(this IBusRegistrationConfigurator bus)
    {
        bus.AddRequestClient<OpenAccount>(RequestTimeout.After(s: 15));
        return bus;
    }

    public static RouteGroupBuilder MapAccounts(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/v1/admin").WithTags("Admin").RequireAuthorization(Roles.Admin);
        admin.MapPost("/accounts", CreateAccount).Accepts<CreateAccountRequest>("application/json");
        return admin;
    }

    internal static async Task<Results<Created<CreateAccountResponse>, ValidationProblem, ProblemHttpResult>> CreateAccount(
        HttpContext http, NpgsqlDataSource db, IRequestClient<OpenAccount> rewards, ApiKeyHasher keys, TimeProvider clock, CancellationToken ct)
    {
        var (request, parseError) = await JsonBody.ReadAsync<CreateAccountRequest>(http, ct);
        if (parseError is not null)
            return parseError;

        var errors = new Dictionary<string, string[]>();
        if (request!.Role is null || !Roles.All.Contains(request.Role))
            errors["role"] = ["role must be one of client, operator, admin"];
        // Control characters (a NUL above all, which Postgres text cannot hold) are no part of a name.
        if (string.IsNullOrWhiteSpace(request.Name) || request.Name.Length > 200 || request.Name.Any(char.IsControl))
            errors["name"] = ["name is required, at most 200 characters, without control characters"];
        if (request.Credits is < 0 or > 1_000_000_000_000m || (request.Credits is { } c && decimal.Round(c, 6) != c))
            errors["credits"] = ["credits must be between 0 and 10^12 with at most 6 decimal places"];
        if (errors.Count > 0)
            return Problems.Validation(errors, "the account could not be created");

        var accountId = AccountId.New();
        var key = ApiKeys.New();
        try
        {
            // The ledger account exists (with its credits) before the key is handed out, so a job submitted
            // with the new key right away is funded.
            await rewards.GetResponse<AccountOpened>(new OpenAccount
            {
                AccountId = accountId,
                Role = request.Role!,
                InitialCredits = request.Credits ?? 0m,
                OccurredAt = clock.GetUtcNow(),
            }, ct);
        }
        catch (Exception ex) when (ex is RequestTimeoutException or RequestFaultException)
        {
            // No answer, or the ledger's consumer failed (its database down, say): nothing was opened; try again.
            return Problems.Create(StatusCodes.Status503ServiceUnavailable, "upstream-unavailable", "Ledger unavailable",
                "the rewards service did not answer or could not open the account; try again");
        }

        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            "insert into accounts (id, role, name) values (@id, @Role, @Name)",
            new { id = accountId.Value, request.Role, Name = request.Name!.Trim() }, tx, cancellationToken: ct));
        await connection.ExecuteAsync(new CommandDefinition(
            "insert into api_keys (key_hash, account_id, scheme) values (@hash, @id, @scheme)",
            new { hash = keys.Hash(key), id = accountId.Value, scheme = ApiKeys.HmacScheme }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);

        return TypedResults.Created($"/v1/account", new CreateAccountResponse(accountId.Value, request.Role!, request.Name.Trim(), key));
    }
}
