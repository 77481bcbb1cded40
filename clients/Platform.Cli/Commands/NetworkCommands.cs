using System.CommandLine;
using System.Globalization;

namespace Platform.Cli.Commands;

public static class NetworkCommands
{
    public static Command Workers(CliHost host)
    {
        var workers = new Command("workers", "Every worker of the network: region, load, reputation, stake");
        workers.SetRun(host, async (s, ct) =>
        {
            s.Show(await s.Client.GetWorkersAsync(ct), all =>
            {
                var table = Output.Table("worker", "operator", "region", "online", "slots", "active", "reputation", "stake", "J/GFLOP", "devices", "last seen");
                foreach (var w in all)
                {
                    table.Row(w.WorkerId, w.OperatorAccountId, w.Region, w.Online ? "yes" : "no", Number(w.Slots), Number(w.Active),
                        w.Reputation.ToString("0.00", CultureInfo.InvariantCulture), Output.Credits(w.OperatorStake),
                        w.Energy?.JoulesPerGflop is { } perGflop ? Output.Significant(perGflop) : "-", Devices(w), Output.Time(w.LastSeenAt));
                }
                s.Host.Out.Write(table);
            });
            return 0;
        });

        var id = new Argument<string>("WORKER") { Description = "The worker's id (./platform workers lists them)" };
        var placement = new Command("placement", "Why a worker gets work or not: its latest placements, why it was passed over, what to do") { id };
        placement.SetRun(host, async (s, ct) =>
        {
            s.Show(await s.Client.GetWorkerPlacementAsync(s.Get(id), ct), p =>
            {
                s.Host.Output.WriteLine(p.Status);
                var reasons = Output.Table("reason", "times", "why", "what to do");
                foreach (var r in p.Reasons)
                    reasons.Row(r.Code, Number(r.Count), r.Message, r.Fix ?? "-");
                s.Host.Out.Write(reasons);
                if (p.Trust.Count > 0)
                {
                    var trust = Output.Table("kernel", "accepted in a row", "next check", "checked", "mismatches");
                    foreach (var t in p.Trust)
                        trust.Row(t.Kernel, Number(t.Streak), Output.Percent(t.CheckProbability), Number(t.Checked), Number(t.Mismatches));
                    s.Host.Out.Write(trust);
                }
            });
            return 0;
        });
        workers.Subcommands.Add(placement);
        return workers;
    }

    public static Command Kernels(CliHost host)
    {
        var kernels = new Command("kernels", "The kernels the network runs: inputs, parameters with their defaults, outputs and shapes");
        kernels.SetRun(host, async (s, ct) =>
        {
            s.Show(await s.Client.GetKernelsAsync(ct), all =>
            {
                var table = Output.Table("kernel", "inputs -> outputs (shapes)", "parameters", "what it computes");
                foreach (var k in all)
                    table.Row(k.Name, k.Shapes, k.Params.Count == 0 ? "-" : string.Join(", ", k.Params.Select(p => $"{p.Name}={p.Default}")), k.Description);
                s.Host.Out.Write(table);
            });
            return 0;
        });
        return kernels;
    }

    public static Command Network(CliHost host)
    {
        var network = new Command("network", "The network at a glance: workers, load, throughput, credits minted, bytes pinned");
        network.SetRun(host, async (s, ct) =>
        {
            s.Show(await s.Client.GetNetworkAsync(ct), n => s.Host.Out.Write(Output.Facts(
                ("workers online", Number(n.WorkersOnline)), ("workers offline", Number(n.WorkersOffline)),
                ("regions", Join(n.Regions)), ("devices", Join(n.Devices)),
                ("slots", Number(n.Slots)), ("active attempts", Number(n.ActiveAttempts)), ("load", Output.Percent(n.Load)),
                ("jobs queued", Number(n.JobsQueued)), ("jobs per minute", Number(n.JobsPerMinute)),
                ("credits minted", Output.Credits(n.CreditsMinted)), ("pinned", $"{Output.Bytes(n.BytesPinned)} in {Number(n.BlobsPinned)} blobs"),
                ("verification", n.Verification is { } v
                    ? $"{v.Overhead.ToString("0.0%", CultureInfo.InvariantCulture)} extra attempts over the last {Number(v.Jobs)} jobs ({Number(v.SpotChecked)} spot-checked, {Number(v.Mismatches)} mismatches)"
                    : "-"),
                ("energy", Energy(n.Energy)))));
            return 0;
        });
        return network;
    }

    /// <summary>"0.58 J per job, 1.1e6 J/GFLOP over 12 jobs (estimated)".</summary>
    public static string Energy(Platform.Contracts.Api.EnergyView? energy)
    {
        if (energy is not { Jobs: > 0 })
            return "-";
        var perGflop = energy.JoulesPerGflop is { } j ? $", {Output.Significant(j)} J/GFLOP" : "";
        return $"{Output.Joules(energy.JoulesPerJob ?? 0)} per job{perGflop} over {Number(energy.Jobs)} jobs ({Output.EnergySource(energy.MeasuredShare)})";
    }

    // Kinds only: device names run to 80 characters and would stretch the table past any terminal.
    private static string Devices(Platform.Contracts.Api.WorkerView w) =>
        string.Join(", ", w.Devices.GroupBy(d => d.Kind).Select(g => g.Count() == 1 ? g.Key : $"{g.Count()} {g.Key}"));

    private static string Number(long n) => n.ToString(CultureInfo.InvariantCulture);

    private static string Join(IReadOnlyDictionary<string, int> counts) =>
        counts.Count == 0 ? "-" : string.Join(", ", counts.Select(c => $"{c.Key} {c.Value}"));
}
