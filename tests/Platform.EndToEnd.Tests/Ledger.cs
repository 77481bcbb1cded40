using System.Net.Http.Json;
using Platform.Contracts.Api;

namespace Platform.EndToEnd.Tests;

/// <summary>An account's own ledger, as its owner reads it (GET /v1/account/ledger).</summary>
public static class Ledger
{
    /// <summary>
    /// The account's postings for one job, all pages read: what this job moved, whatever other jobs paid the
    /// same account before or after (a balance compared before and after counts those too).
    /// </summary>
    public static async Task<List<LedgerEntry>> EntriesForJobAsync(this HttpClient http, string jobId)
    {
        var entries = new List<LedgerEntry>();
        string? cursor = null;
        do
        {
            var page = (await http.GetFromJsonAsync<LedgerPage>(
                "/v1/account/ledger?limit=200" + (cursor is null ? "" : "&cursor=" + Uri.EscapeDataString(cursor)), Api.Json))!;
            entries.AddRange(page.Entries.Where(e => e.JobId == jobId));
            cursor = page.NextCursor;
        }
        while (cursor is not null);
        return entries;
    }
}
