using System.CommandLine;
using System.Globalization;
using Platform.Client;
using Platform.Contracts.Api;

namespace Platform.Cli.Commands;

public static class AccountCommands
{
    public static Command Build(CliHost host)
    {
        var account = new Command("account", "The account of the key: balance, escrowed, earned, staked");
        account.SetRun(host, async (s, ct) =>
        {
            s.Show(await s.Client.GetAccountAsync(ct), a => ShowAccount(s, a));
            return 0;
        });

        var limit = new Option<int>("--limit") { Description = "At most this many entries (newest first)", DefaultValueFactory = _ => 50 };
        var ledger = new Command("ledger", "The account's ledger entries, newest first") { limit };
        ledger.SetRun(host, async (s, ct) =>
        {
            var n = Math.Max(1, s.Get(limit));
            var entries = await s.Client.ListLedgerAsync(Math.Min(n, 200), ct).Take(n).ToListAsync(ct);
            s.Show(entries, all =>
            {
                var table = Output.Table("time", "kind", "amount", "job", "worker", "transaction");
                foreach (var e in all)
                    table.Row(Output.Time(e.CreatedAt), e.Kind, Output.Credits(e.Amount), e.JobId, e.WorkerId, e.TransactionId.ToString(CultureInfo.InvariantCulture));
                s.Host.Out.Write(table);
            });
            return 0;
        });

        var earnings = new Command("earnings", "What an operator's nodes earned, by worker and by day");
        earnings.SetRun(host, async (s, ct) =>
        {
            s.Show(await s.Client.GetEarningsAsync(ct), e =>
            {
                s.Host.Output.WriteLine($"total earned: {Output.Credits(e.Total)} credits (paid {Output.Credits(e.Paid)}, minted {Output.Credits(e.Minted)})");
                var workers = Output.Table("worker", "jobs", "paid", "minted");
                foreach (var w in e.Workers)
                    workers.Row(w.WorkerId, w.Jobs.ToString(CultureInfo.InvariantCulture), Output.Credits(w.Paid), Output.Credits(w.Minted));
                s.Host.Out.Write(workers);
                var days = Output.Table("day", "paid", "minted");
                foreach (var d in e.Days)
                    days.Row(d.Date, Output.Credits(d.Paid), Output.Credits(d.Minted));
                s.Host.Out.Write(days);
            });
            return 0;
        });

        var threshold = new Argument<decimal?>("THRESHOLD") { Description = "Warn when the balance falls below this many credits", Arity = ArgumentArity.ZeroOrOne };
        var clear = new Option<bool>("--clear") { Description = "Remove the threshold: no more warnings" };
        var lowBalance = new Command("low-balance", "Set (or --clear) the balance below which the dashboard, the CLI and an event warn") { threshold, clear };
        lowBalance.SetRun(host, async (s, ct) =>
        {
            var value = s.Get(threshold);
            if (s.Get(clear) == value.HasValue)
                throw new UsageException("give a THRESHOLD or --clear, not both");
            if (value < 0)
                throw new UsageException("THRESHOLD may not be negative");
            s.Show(await s.Client.SetLowBalanceThresholdAsync(value, ct), a => ShowAccount(s, a));
            return 0;
        });

        var url = new Argument<string?>("URL") { Description = "Send the account's events (a low balance) to this public http(s) URL", Arity = ArgumentArity.ZeroOrOne };
        var clearHook = new Option<bool>("--clear") { Description = "Remove the webhook: nothing more is sent" };
        var test = new Option<bool>("--test") { Description = "Send the webhook a webhook.test event" };
        var webhook = new Command("webhook", "Show, set (URL), --test or --clear the webhook that receives the account's events, signed") { url, clearHook, test };
        webhook.SetRun(host, async (s, ct) =>
        {
            var given = new[] { s.Get(url) is not null, s.Get(clearHook), s.Get(test) }.Count(x => x);
            if (given > 1)
                throw new UsageException("give a URL, --clear or --test: one at a time");
            if (s.Get(clearHook))
            {
                await s.Client.DeleteWebhookAsync(ct);
                s.Show(new { removed = true }, _ => s.Host.Output.WriteLine("webhook removed"));
                return 0;
            }
            if (s.Get(test))
            {
                var sent = await s.Client.TestWebhookAsync(ct);
                s.Show(sent, d => s.Host.Output.WriteLine($"test event {d.Id} queued; 'platform account webhook' shows whether it was delivered"));
                return 0;
            }
            var hook = s.Get(url) is { } target ? await s.Client.SetWebhookAsync(target, ct) : await s.Client.GetWebhookAsync(ct);
            s.Show(hook, h => ShowWebhook(s, h));
            return 0;
        });

        account.Subcommands.Add(ledger);
        account.Subcommands.Add(earnings);
        account.Subcommands.Add(lowBalance);
        account.Subcommands.Add(webhook);
        account.Subcommands.Add(Move(host, "stake", "Stake credits: operators' workers get work only with the network's minimum staked",
            (c, amount, ct) => c.StakeAsync(amount, null, ct)));
        account.Subcommands.Add(Move(host, "unstake", "Move staked credits back to the balance",
            (c, amount, ct) => c.UnstakeAsync(amount, null, ct)));
        return account;
    }

    private static Command Move(CliHost host, string name, string description, Func<PlatformClient, decimal, CancellationToken, Task> move)
    {
        var amount = new Argument<decimal>("AMOUNT") { Description = "Credits" };
        var command = new Command(name, description) { amount };
        command.SetRun(host, async (s, ct) =>
        {
            if (s.Get(amount) <= 0)
                throw new UsageException("AMOUNT must be above zero");
            await move(s.Client, s.Get(amount), ct);
            s.Show(await s.Client.GetAccountAsync(ct), a => ShowAccount(s, a));
            return 0;
        });
        return command;
    }

    private static void ShowAccount(Session s, AccountResponse a)
    {
        s.Host.Out.Write(Output.Facts(("account", a.AccountId), ("role", a.Role), ("balance", Output.Credits(a.Balance)),
            ("escrowed", Output.Credits(a.Escrowed)), ("earned", Output.Credits(a.Earned)), ("staked", Output.Credits(a.Staked)),
            ("low-balance threshold", a.LowBalanceThreshold is { } t ? Output.Credits(t) : "none")));
        if (a.LowBalance)
            Output.Warn(s.Host, LowBalanceWarning(a));
    }

    private static void ShowWebhook(Session s, Platform.Contracts.Api.WebhookView h)
    {
        s.Host.Out.Write(Output.Facts(("url", h.Url), ("since", Output.Time(h.CreatedAt))));
        if (h.Secret is { } secret)
            s.Host.Output.WriteLine($"signing secret (shown this once; verify each delivery's webhook-signature with it): {secret}");
        var table = Output.Table("id", "type", "status", "attempts", "last status", "last error", "created", "next attempt");
        foreach (var d in h.Deliveries)
            table.Row(d.Id, d.Type, d.Status, d.Attempts.ToString(CultureInfo.InvariantCulture), d.LastStatus?.ToString(CultureInfo.InvariantCulture), d.LastError,
                Output.Time(d.CreatedAt), Output.Time(d.NextAttemptAt));
        s.Host.Out.Write(table);
    }

    /// <summary>The same words as the dashboard's banner.</summary>
    public static string LowBalanceWarning(AccountResponse a) =>
        $"your balance {Output.Credits(a.Balance)} is below your warning threshold of {Output.Credits(a.LowBalanceThreshold)}: " +
        "top up or lower the threshold before jobs are rejected for insufficient credits";

    /// <summary>Saves a URL and key for later commands, after checking the key works.</summary>
    public static Command Login(CliHost host)
    {
        var login = new Command("login", "Check a key against the gateway and save both in ~/.config/platform/config.json");
        login.SetRun(host, async (s, ct) =>
        {
            if (s.Settings.Key is null)
                throw new UsageException("give the key to save: platform login --key pk_... [--url URL]");
            var account = await s.Client.GetAccountAsync(ct);
            var path = Settings.Save(new Settings.Saved(s.Settings.Url.ToString().TrimEnd('/'), s.Settings.Key), s.Host.Environment);
            s.Show(account, a => s.Host.Output.WriteLine($"logged in to {s.Settings.Url} as {a.AccountId} ({a.Role}); saved in {path}"));
            return 0;
        });
        return login;
    }

    public static Command Admin(CliHost host)
    {
        var role = new Option<string>("--role") { Description = "client, operator or admin", Required = true };
        role.AcceptOnlyFromAmong("client", "operator", "admin");
        var name = new Option<string>("--name") { Description = "Who the account is for", Required = true };
        var credits = new Option<decimal>("--credits") { Description = "Credits to start with" };
        var create = new Command("create-account", "Open an account and print its key (shown once); needs an admin key") { role, name, credits };
        create.SetRun(host, async (s, ct) =>
        {
            var created = await s.Client.CreateAccountAsync(new CreateAccountRequest(s.Get(role), s.Get(name), s.Get(credits)), ct);
            s.Show(created, a =>
            {
                s.Host.Output.WriteLine(a.Key);
                s.Host.Error.WriteLine($"{a.Role} account {a.AccountId} ({a.Name}); the key above is shown only once");
            });
            return 0;
        });
        var admin = new Command("admin", "Administration (admin key)");
        admin.Subcommands.Add(create);
        return admin;
    }
}
