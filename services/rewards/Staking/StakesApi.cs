using MassTransit;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts.Api;
using Platform.Hosting.Http;
using Platform.Hosting.Outbox;
using Platform.Rewards.Ledger;

namespace Platform.Rewards.Staking;

/// <summary>Operators stake credits to be given work, and take them back once their results have been checked.</summary>
public static class StakesApi
{
    public const string IdempotencyKeyHeader = "Idempotency-Key";
    private const int MaxIdempotencyKeyLength = 200;

    public static IBusRegistrationConfigurator AddStaking(this IBusRegistrationConfigurator bus)
    {
        bus.AddConsumer<WorkerPenalizedConsumer>();
        bus.AddRequestClient<Platform.Contracts.Messages.GetOperatorExposure>();
        return bus;
    }

    public static IServiceCollection AddStakingOptions(this IServiceCollection services)
    {
        services.AddOptions<StakingOptions>().BindConfiguration(StakingOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddScoped<UnstakeGuard>();
        return services;
    }

    public static RouteGroupBuilder MapStakes(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/account").WithTags("Account").RequireGatewayProof();
        group.MapPost("/stake", (HttpContext http, NpgsqlDataSource db, MessageOutbox outbox, IOptions<StakingOptions> options, TimeProvider clock, CancellationToken ct) =>
            MoveAsync(http, db, outbox, options.Value, clock, guard: null, ct));
        group.MapPost("/unstake", (HttpContext http, NpgsqlDataSource db, MessageOutbox outbox, IOptions<StakingOptions> options, TimeProvider clock, UnstakeGuard guard, CancellationToken ct) =>
            MoveAsync(http, db, outbox, options.Value, clock, guard, ct));
        return group;
    }

    /// <summary>A stake, or (with a <paramref name="guard"/>) an unstake, which the scheduler must first clear.</summary>
    internal static async Task<Results<Ok<StakeResponse>, ProblemHttpResult, ValidationProblem>> MoveAsync(
        HttpContext http, NpgsqlDataSource db, MessageOutbox outbox, StakingOptions options, TimeProvider clock, UnstakeGuard? guard, CancellationToken ct)
    {
        var unstake = guard is not null;
        var account = http.GatewayAccount();
        var (body, malformed) = await JsonBody.ReadAsync<StakeRequest>(http, ct);
        if (malformed is not null)
            return malformed;
        var amount = body!.Amount;
        if (amount is not { } value || value <= 0)
            return Problems.Validation(new Dictionary<string, string[]> { ["amount"] = ["must be a number of credits above zero"] }, "amount must be above zero");
        if (value != CreditLedger.Round(value))
            return Problems.Validation(new Dictionary<string, string[]> { ["amount"] = ["credits have at most 6 fractional digits"] }, "amount has more than 6 fractional digits");

        var key = http.Request.Headers[IdempotencyKeyHeader].ToString();
        if (http.Request.Headers.ContainsKey(IdempotencyKeyHeader) && (key.Length is 0 or > MaxIdempotencyKeyLength))
            return Problems.BadRequest("invalid-idempotency-key", "Invalid Idempotency-Key", $"an Idempotency-Key has 1 to {MaxIdempotencyKeyLength} characters");
        // Stake and unstake keys live apart: one client key reused for a stake and an unstake is two requests.
        var verb = unstake ? "unstake" : "stake";
        var ledgerKey = $"{verb}:{account}:{(key.Length > 0 ? key : Guid.NewGuid().ToString("N"))}";

        var result = await Stakes.MoveAsync(db, outbox, account, value, unstake, ledgerKey, clock.GetUtcNow(), options.UnbondingPeriod, ct, dryRun: unstake);
        if (guard is not null && result.Outcome == StakeOutcome.Applied)
        {
            // Only an unstake the ledger would make asks the scheduler; then the ledger checks everything again.
            var exposure = await guard.ExposureAsync(account, ct);
            if (exposure is null)
                return Problems.Create(StatusCodes.Status503ServiceUnavailable, "upstream-unavailable", "Scheduler unavailable",
                    $"the stake was not released: the scheduler did not say within {options.ExposureTimeout} whether this operator has results awaiting verification; try again shortly");
            if (exposure.PendingSlashes.Count > 0)
                return Problems.Create(StatusCodes.Status409Conflict, "stake-slash-pending", "A slash is pending",
                    $"the stake was not released: {exposure.PendingSlashes.Count} penalized attempt(s) of this operator's nodes ({string.Join(", ", exposure.PendingSlashes.Take(5))}) have not been slashed yet; try again once they have been, usually within a minute (the stake then also waits out the unbonding period)");
            if (exposure.UnverifiedAttempts > 0)
                return Problems.Create(StatusCodes.Status409Conflict, "stake-unverified-attempts", "Results awaiting verification",
                    $"the stake was not released: {exposure.UnverifiedAttempts} result(s) of this operator's nodes are still awaiting verification; try again once they have been accepted or rejected");
            result = await Stakes.MoveAsync(db, outbox, account, value, unstake, ledgerKey, clock.GetUtcNow(), options.UnbondingPeriod, ct);
        }
        return result.Outcome switch
        {
            StakeOutcome.Applied or StakeOutcome.Replayed => TypedResults.Ok(new StakeResponse(account, result.Balance, result.Staked, result.Version!.Value)),
            StakeOutcome.NotFound => Problems.NotFound("account-not-found", "Account not found", "this account has no ledger entries yet"),
            StakeOutcome.NotOperator => Problems.Create(StatusCodes.Status403Forbidden, "forbidden", "Only operators stake", "staking is for operator accounts, whose nodes do work"),
            StakeOutcome.InsufficientBalance => Problems.Create(StatusCodes.Status402PaymentRequired, "insufficient-credits", "Insufficient credits",
                $"staking {value} credits needs them in the balance, which holds {result.Balance}"),
            StakeOutcome.InsufficientStake => Problems.Create(StatusCodes.Status409Conflict, "insufficient-stake", "Insufficient stake",
                $"cannot unstake {value} credits: the stake holds {result.Staked}"),
            StakeOutcome.Unbonding => Problems.Create(StatusCodes.Status409Conflict, "stake-unbonding", "Stake is unbonding",
                $"this operator was paid, minted or slashed within the last {options.UnbondingPeriod}; its stake can be withdrawn once its results have been checked"),
            StakeOutcome.KeyReused => Problems.Create(StatusCodes.Status409Conflict, "idempotency-key-reused", "Idempotency-Key reused",
                "this Idempotency-Key was used before for a different amount"),
            _ => throw new InvalidOperationException($"unknown stake outcome {result.Outcome}"),
        };
    }
}
