using System.Net.Sockets;
using System.Text;
using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Hosting.Database;

namespace Platform.Rewards.Webhooks;

/// <summary>
/// Delivers queued webhook events: each is POSTed until its receiver answers 2xx, retried after
/// <see cref="WebhookOptions.FirstRetryAfter"/>, doubling up to <see cref="WebhookOptions.MaxRetryDelay"/>, and given up
/// (failed, logged) after <see cref="WebhookOptions.MaxAttempts"/>. A delivery is claimed by pushing its next attempt
/// a lease into the future, so two rewards instances never send one attempt twice and a sender that dies mid-attempt
/// leaves it to be tried again when the lease runs out; no transaction is held open across a call. A batch takes one
/// delivery per account, so a receiver that never answers costs its own account's events their time, no one else's.
/// A receiver may still see an event twice (an answer lost on the way back): the webhook-id tells it.
/// </summary>
public sealed class WebhookSender(NpgsqlDataSource db, IHttpClientFactory httpClients, IOptions<WebhookOptions> options, DatabaseState database,
    TimeProvider clock, ILogger<WebhookSender> logger) : BackgroundService
{
    private const int Batch = 16;
    private readonly SemaphoreSlim _wake = new(0, 1);

    private sealed record Due(long Id, Guid MessageId, string AccountId, string EventType, string Body, int Attempts, string Url, string Secret);

    /// <summary>Something was queued: look now rather than at the next poll.</summary>
    public void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already woken.
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.Enabled)
            return;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                while (database.Migrated && await DeliverDueAsync(stoppingToken) > 0)
                {
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Webhook deliveries could not be read or recorded; trying again in {Interval}", options.Value.PollInterval);
            }
            await _wake.WaitAsync(options.Value.PollInterval, stoppingToken);
        }
    }

    /// <summary>Sends one batch of due deliveries; how many there were.</summary>
    private async Task<int> DeliverDueAsync(CancellationToken ct)
    {
        var o = options.Value;
        IReadOnlyList<Due> due;
        await using (var connection = await db.OpenConnectionAsync(ct))
        {
            // One due delivery per account per batch, oldest first: an account whose receiver never answers holds up
            // one of the batch's attempts, not everyone's warnings. The outer next_attempt_at check is evaluated again
            // on a row another sender claimed meanwhile (pushed into the future), so no attempt is sent twice.
            due = (await connection.QueryAsync<Due>(new CommandDefinition(
                """
                update webhook_deliveries d set attempts = d.attempts + 1, next_attempt_at = now() + @lease
                from webhooks w
                where d.id in (select id from (select distinct on (p.account_id) p.id, p.next_attempt_at
                                               from webhook_deliveries p join webhooks h on h.account_id = p.account_id
                                               where p.status = 'pending' and p.next_attempt_at <= now()
                                               order by p.account_id, p.next_attempt_at) oldest
                               order by next_attempt_at limit @batch)
                  and d.status = 'pending' and d.next_attempt_at <= now()
                  and w.account_id = d.account_id
                returning d.id, d.message_id as MessageId, d.account_id as AccountId, d.event_type as EventType, d.body, d.attempts, w.url, w.secret
                """,
                new { lease = o.Timeout + TimeSpan.FromSeconds(30), batch = Batch }, cancellationToken: ct))).ToList();
        }
        await Task.WhenAll(due.Select(d => AttemptAsync(d, o, ct)));
        return due.Count;
    }

    private async Task AttemptAsync(Due delivery, WebhookOptions o, CancellationToken ct)
    {
        var (status, error) = await SendAsync(delivery, o, ct);
        await using var connection = await db.OpenConnectionAsync(ct);
        if (error is null)
        {
            await connection.ExecuteAsync(new CommandDefinition(
                "update webhook_deliveries set status = 'delivered', delivered_at = now(), last_status = @status, last_error = null where id = @id and status = 'pending'",
                new { id = delivery.Id, status }, cancellationToken: ct));
            logger.LogInformation("Webhook {Type} {Delivery} of {Account} delivered: {Status}", delivery.EventType, delivery.Id, delivery.AccountId, status);
            return;
        }
        var givenUp = delivery.Attempts >= o.MaxAttempts;
        await connection.ExecuteAsync(new CommandDefinition(
            """
            update webhook_deliveries set status = case when @givenUp then 'failed' else 'pending' end,
                   next_attempt_at = now() + @delay, last_status = @status, last_error = @error
            where id = @id and status = 'pending'
            """,
            new { id = delivery.Id, givenUp, delay = o.RetryDelayAfter(delivery.Attempts), status, error }, cancellationToken: ct));
        if (givenUp)
            logger.LogWarning("Webhook {Type} {Delivery} of {Account} given up after {Attempts} attempts: {Error}", delivery.EventType, delivery.Id, delivery.AccountId,
                delivery.Attempts, error);
        else
            logger.LogInformation("Webhook {Type} {Delivery} of {Account} attempt {Attempt} failed ({Error}); next in {Delay}", delivery.EventType, delivery.Id,
                delivery.AccountId, delivery.Attempts, error, o.RetryDelayAfter(delivery.Attempts));
    }

    /// <summary>One attempt: the receiver's status code, and why it failed (null when it answered 2xx).</summary>
    private async Task<(int? Status, string? Error)> SendAsync(Due delivery, WebhookOptions o, CancellationToken ct)
    {
        var id = $"msg_{delivery.MessageId:N}";
        var timestamp = clock.GetUtcNow().ToUnixTimeSeconds();
        using var request = new HttpRequestMessage(HttpMethod.Post, delivery.Url) { Content = new StringContent(delivery.Body, Encoding.UTF8, "application/json") };
        request.Headers.Add("webhook-id", id);
        request.Headers.Add("webhook-timestamp", timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.Add("webhook-signature", WebhookSignature.Sign(delivery.Secret, id, timestamp, delivery.Body));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(o.Timeout);
        try
        {
            // The answer's body is not read: only its status counts.
            using var response = await httpClients.CreateClient(WebhookHttp.ClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            var status = (int)response.StatusCode;
            return response.IsSuccessStatusCode ? (status, null) : (status, $"the receiver answered {status}");
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return (null, $"no answer within {o.Timeout.TotalSeconds:0.###} s");
        }
        catch (HttpRequestException ex)
        {
            // Said without the exception's stack or inner details: the account holder reads it.
            return (null, ex.InnerException switch
            {
                WebhookAddressRefusedException refused => refused.Message,
                SocketException socket => $"could not connect: {socket.SocketErrorCode}",
                _ => $"the request failed: {ex.HttpRequestError}",
            });
        }
    }
}
