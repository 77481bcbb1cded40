using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Dapper;
using Npgsql;
using Platform.Testing;

namespace Platform.EndToEnd.Tests.Chaos;

/// <summary>What was moving in the network at one look: messages in queues, unsent outbox rows, and a digest of the state messages change.</summary>
public sealed record Traffic(IReadOnlyList<string> BusyQueues, IReadOnlyList<string> UnsentOutboxes, string State, IReadOnlyList<string> DeadLetters, TimeSpan At)
{
    public bool Idle => BusyQueues.Count == 0 && UnsentOutboxes.Count == 0;
}

/// <summary>
/// Waits until no message is in flight anywhere: every queue of the network's vhost empty (ready and unacked:
/// a message a consumer is retrying is unacked), every service's outbox sent, and the state the messages move
/// (jobs, attempts, escrows, ledger transactions, outbox rows) unchanged, twice, further apart than the
/// management API's statistics interval (5 s by default), so a message the broker's figures had not caught up
/// with at the first look shows up, or has left its mark on the state, by the second.
/// </summary>
public static class Quiescence
{
    private static readonly TimeSpan StatisticsInterval = TimeSpan.FromSeconds(6);
    private static readonly string[] Services = ["gateway", "scheduler", "rewards", "storage"];

    public static async Task<Traffic> WaitAsync(Network network, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        Traffic? quietSince = null;
        return await Eventually.UntilAsync(async () => await LookAsync(network, clock.Elapsed), traffic =>
        {
            if (!traffic.Idle || quietSince is null || quietSince.State != traffic.State)
            {
                quietSince = traffic.Idle ? traffic : null;
                return false;
            }
            return traffic.At - quietSince.At >= StatisticsInterval;
        }, timeout, "no message in flight (queues and outboxes empty, state unchanged)");
    }

    public static async Task<Traffic> LookAsync(Network network, TimeSpan at)
    {
        var management = network.Environment.Infrastructure.RabbitMqManagement;
        var queues = await management.GetFromJsonAsync<JsonElement>(
            $"api/queues/{Uri.EscapeDataString(network.Environment.Name)}?columns=name,messages,messages_unacknowledged,consumers");
        var busy = new List<string>();
        var deadLetters = new List<string>();
        foreach (var queue in queues.EnumerateArray())
        {
            var name = queue.GetProperty("name").GetString()!;
            var messages = queue.TryGetProperty("messages", out var m) && m.ValueKind == JsonValueKind.Number ? m.GetInt64() : 0;
            var consumers = queue.TryGetProperty("consumers", out var c) && c.ValueKind == JsonValueKind.Number ? c.GetInt64() : 0;
            if (messages == 0)
                continue;
            if (name.EndsWith("_error", StringComparison.Ordinal) || name.EndsWith("_skipped", StringComparison.Ordinal))
                deadLetters.Add($"{name}: {messages}");
            // A killed node's own queues (worker-<id>, worker-<id>-control) keep what was sent to it after it died;
            // no one will read them, and the scheduler moved its attempts by their leases.
            else if (consumers == 0 && name.StartsWith("worker-", StringComparison.Ordinal))
                continue;
            else
                busy.Add($"{name}: {messages}");
        }

        var unsent = new List<string>();
        var state = new List<string>();
        foreach (var service in Services)
        {
            await using var db = new NpgsqlConnection(network.Environment.PostgresConnectionStringFor(service));
            var (lastId, waiting) = await db.QuerySingleAsync<(long, long)>(
                "select coalesce(max(id), 0), count(*) filter (where sent_at is null) from outbox");
            if (waiting > 0)
                unsent.Add($"{service}: {waiting}");
            state.Add($"{service} outbox {lastId}");
            var digest = service switch
            {
                "gateway" => "select md5(coalesce(string_agg(id || status || coalesce(cost::text, ''), ',' order by id), '')) from jobs",
                "scheduler" => "select md5(coalesce(string_agg(id || status, ',' order by id), '')) from attempts",
                "rewards" => "select (select count(*) from transactions)::text || md5(coalesce(string_agg(job_id || status, ',' order by job_id), '')) from escrows",
                _ => null,
            };
            if (digest is not null)
                state.Add($"{service} {await db.ExecuteScalarAsync<string>(digest)}");
        }
        return new Traffic(busy, unsent, string.Join("; ", state), deadLetters, at);
    }
}
