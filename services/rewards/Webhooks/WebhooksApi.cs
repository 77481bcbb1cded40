using System.Net;
using Dapper;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Contracts.Api;
using Platform.Hosting.Http;

namespace Platform.Rewards.Webhooks;

/// <summary>
/// The caller's webhook: <c>PUT /v1/account/webhook</c> sets its URL and answers a new signing secret (once), GET shows
/// it with its recent deliveries, DELETE removes it (deliveries not yet made are dropped), and
/// <c>POST /v1/account/webhook/test</c> sends it a test event. Like the low-balance threshold whose warnings it
/// carries, it is for accounts that pay for jobs (clients and admins).
/// </summary>
public static class WebhooksApi
{
    public const int MaxUrlLength = 2048;
    public const int DeliveriesShown = 20;

    public static RouteGroupBuilder MapWebhooks(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/account/webhook").WithTags("Account").RequireGatewayProof();
        group.MapGet("/", GetAsync);
        group.MapPut("/", PutAsync);
        group.MapDelete("/", DeleteAsync);
        group.MapPost("/test", TestAsync);
        return group;
    }

    internal static async Task<Results<Ok<WebhookView>, ProblemHttpResult>> GetAsync(HttpContext http, NpgsqlDataSource db, IOptions<WebhookOptions> options,
        CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        if (await RefusedAsync(connection, http.GatewayAccount(), options.Value, ct) is { } refused)
            return refused;
        return await ViewAsync(connection, http.GatewayAccount(), secret: null, ct) is { } view ? TypedResults.Ok(view) : NotSet();
    }

    internal static async Task<Results<Ok<WebhookView>, ProblemHttpResult, ValidationProblem>> PutAsync(HttpContext http, NpgsqlDataSource db,
        IOptions<WebhookOptions> options, CancellationToken ct)
    {
        var account = http.GatewayAccount();
        var (body, malformed) = await JsonBody.ReadAsync<WebhookRequest>(http, ct);
        if (malformed is not null)
            return malformed;
        await using var connection = await db.OpenConnectionAsync(ct);
        if (await RefusedAsync(connection, account, options.Value, ct) is { } refused)
            return refused;
        if (await UrlErrorAsync(body!.Url, options.Value, ct) is { } error)
            return Problems.Validation(new Dictionary<string, string[]> { ["url"] = [error] }, $"the webhook URL cannot be used: {error}");

        var secret = WebhookSignature.NewSecret();
        await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into webhooks (account_id, url, secret) values (@account, @url, @secret)
            on conflict (account_id) do update set url = excluded.url, secret = excluded.secret, created_at = now()
            """,
            new { account, url = body.Url, secret }, cancellationToken: ct));
        return TypedResults.Ok((await ViewAsync(connection, account, secret, ct))!);
    }

    internal static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(HttpContext http, NpgsqlDataSource db, IOptions<WebhookOptions> options, CancellationToken ct)
    {
        var account = http.GatewayAccount();
        await using var connection = await db.OpenConnectionAsync(ct);
        if (await RefusedAsync(connection, account, options.Value, ct) is { } refused)
            return refused;
        await using var tx = await connection.BeginTransactionAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            """
            delete from webhooks where account_id = @account;
            update webhook_deliveries set status = 'dropped', last_error = 'the webhook was removed' where account_id = @account and status = 'pending';
            """,
            new { account }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        return TypedResults.NoContent();
    }

    internal static async Task<Results<Accepted<WebhookDelivery>, ProblemHttpResult>> TestAsync(HttpContext http, NpgsqlDataSource db, WebhookSender sender,
        IOptions<WebhookOptions> options, TimeProvider clock, CancellationToken ct)
    {
        var account = http.GatewayAccount();
        await using var connection = await db.OpenConnectionAsync(ct);
        if (await RefusedAsync(connection, account, options.Value, ct) is { } refused)
            return refused;
        // One test at a time: a client cannot fill the queue with tests to a receiver that never answers.
        if (await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
                "select exists (select 1 from webhook_deliveries where account_id = @account and event_type = @type and status = 'pending')",
                new { account, type = WebhookEvents.Test }, cancellationToken: ct)))
        {
            http.Response.Headers.RetryAfter = "10";
            return Problems.Create(StatusCodes.Status429TooManyRequests, "webhook-test-pending", "A test is still on its way",
                "the last test event has not been delivered or given up yet; GET /v1/account/webhook shows it");
        }
        var messageId = Guid.NewGuid();
        var body = WebhookEvents.Body(WebhookEvents.Test, clock.GetUtcNow(), new { accountId = account });
        if (!await WebhookEvents.QueueAsync(connection, messageId, account, WebhookEvents.Test, body, ct))
            return NotSet();
        sender.Wake();
        var delivery = await connection.QuerySingleAsync<DeliveryRow>(new CommandDefinition(DeliveriesQuery + " and message_id = @messageId",
            new { account, messageId }, cancellationToken: ct));
        return TypedResults.Accepted("/v1/account/webhook", delivery.View());
    }

    private const string DeliveriesQuery = """
        select 'msg_' || replace(message_id::text, '-', '') as Id, event_type as Type, status, attempts, last_status as LastStatus, last_error as LastError,
               created_at as CreatedAt, case when status = 'pending' then next_attempt_at end as NextAttemptAt, delivered_at as DeliveredAt
        from webhook_deliveries where account_id = @account
        """;

    // timestamptz reads as a UTC DateTime.
    private sealed record DeliveryRow(string Id, string Type, string Status, int Attempts, int? LastStatus, string? LastError, DateTime CreatedAt,
        DateTime? NextAttemptAt, DateTime? DeliveredAt)
    {
        public WebhookDelivery View() => new(Id, Type, Status, Attempts, LastStatus, LastError, Utc(CreatedAt), NextAttemptAt is { } n ? Utc(n) : null,
            DeliveredAt is { } d ? Utc(d) : null);
    }

    private static DateTimeOffset Utc(DateTime time) => new(DateTime.SpecifyKind(time, DateTimeKind.Utc));

    private static async Task<WebhookView?> ViewAsync(NpgsqlConnection connection, string account, string? secret, CancellationToken ct)
    {
        var hook = await connection.QuerySingleOrDefaultAsync<(string Url, DateTime CreatedAt)?>(new CommandDefinition(
            "select url, created_at from webhooks where account_id = @account", new { account }, cancellationToken: ct));
        if (hook is not { } h)
            return null;
        var deliveries = (await connection.QueryAsync<DeliveryRow>(new CommandDefinition(DeliveriesQuery + " order by id desc limit @take",
            new { account, take = DeliveriesShown }, cancellationToken: ct))).Select(d => d.View()).ToList();
        return new WebhookView(h.Url, Utc(h.CreatedAt), deliveries, secret);
    }

    /// <summary>Why this account may not use a webhook here, if it may not.</summary>
    private static async Task<ProblemHttpResult?> RefusedAsync(NpgsqlConnection connection, string account, WebhookOptions options, CancellationToken ct)
    {
        if (!options.Enabled)
            return Problems.Create(StatusCodes.Status403Forbidden, "webhooks-disabled", "Webhooks are off",
                "this deployment sends nothing out of it: its operator turned webhooks off (Webhooks:Enabled)");
        var kind = await connection.ExecuteScalarAsync<string?>(new CommandDefinition("select kind from accounts where id = @account", new { account }, cancellationToken: ct));
        if (kind is null)
            return Accounts.AccountsApi.AccountNotFound();
        return kind is "client" or "admin"
            ? null
            : Problems.Create(StatusCodes.Status403Forbidden, "forbidden", "Only clients set a webhook", "the webhook carries low-balance warnings, for accounts that pay for jobs");
    }

    private static ProblemHttpResult NotSet() =>
        Problems.NotFound("webhook-not-set", "No webhook", "this account has no webhook; set one with PUT /v1/account/webhook");

    /// <summary>
    /// What is wrong with a webhook URL, if anything: it must be an absolute http or https URL without credentials
    /// or fragment, whose host is a public address or a name that resolves to one (checked again at every delivery,
    /// where it counts: see <see cref="WebhookHttp"/>).
    /// </summary>
    internal static async Task<string?> UrlErrorAsync(string? url, WebhookOptions options, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(url))
            return "url is required";
        if (url.Length > MaxUrlLength)
            return $"at most {MaxUrlLength} characters";
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            return "an absolute http or https URL is needed";
        if (uri.UserInfo.Length > 0)
            return "a URL with a user name or password is not taken; authenticate the deliveries by their signature";
        if (uri.Fragment.Length > 0)
            return "a URL with a fragment (#...) is not taken";
        if (options.AllowPrivateAddresses)
            return null;
        IPAddress[] addresses;
        if (IPAddress.TryParse(uri.IdnHost.Trim('[', ']'), out var literal))
            addresses = [literal];
        else
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromSeconds(5));
                addresses = await Dns.GetHostAddressesAsync(uri.IdnHost, timeout.Token);
            }
            catch (Exception ex) when (ex is System.Net.Sockets.SocketException or OperationCanceledException && !ct.IsCancellationRequested)
            {
                return $"{uri.Host} does not resolve here";
            }
        }
        return addresses.Any(PublicAddresses.IsPublic) ? null : $"{uri.Host} is not a public address; webhooks are sent to public addresses only";
    }
}
