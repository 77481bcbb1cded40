using System.CommandLine;
using Platform.Contracts.Api;

namespace Platform.Cli.Commands;

public static class DatasetsCommands
{
    public static Command Build(CliHost host)
    {
        var datasets = new Command("datasets", "Name a set of pinned blobs; the dataset's id is a CID too");

        var name = new Option<string>("--name") { Description = "The dataset's name", Required = true };
        var description = new Option<string?>("--description") { Description = "What the data is" };
        var license = new Option<string?>("--license") { Description = "An SPDX identifier such as CC-BY-4.0, or a short name" };
        var cids = new Argument<string[]>("CID") { Description = "The pinned blobs it holds", Arity = ArgumentArity.OneOrMore };
        var create = new Command("create", "Create a dataset from pinned blobs; prints its CID") { name, description, license, cids };
        create.SetRun(host, async (s, ct) =>
        {
            var dataset = await s.Client.CreateDatasetAsync(new CreateDatasetRequest(s.Get(name), s.Get(description), s.Get(license)!, s.Get(cids)), ct);
            s.Show(dataset, d =>
            {
                s.Host.Output.WriteLine(d.Cid);
                s.Host.Error.WriteLine($"dataset '{d.Manifest.Name}': {d.Manifest.Blobs.Count} blob(s), {Output.Bytes(d.Manifest.TotalSize)}");
            });
            return 0;
        });

        var cid = new Argument<string>("CID") { Description = "The dataset's CID" };
        var get = new Command("get", "Show a dataset's manifest") { cid };
        get.SetRun(host, async (s, ct) =>
        {
            var dataset = await s.Client.GetDatasetAsync(s.Get(cid), ct);
            s.Show(dataset, d =>
            {
                var m = d.Manifest;
                s.Host.Out.Write(Output.Facts(("cid", d.Cid), ("name", m.Name), ("description", m.Description), ("license", m.License),
                    ("size", Output.Bytes(m.TotalSize)), ("owner", d.Owner), ("created", Output.Time(d.CreatedAt))));
                var blobs = Output.Table("blob", "size");
                foreach (var b in m.Blobs)
                    blobs.Row(b.Cid, Output.Bytes(b.Size));
                s.Host.Out.Write(blobs);
            });
            return 0;
        });

        datasets.Subcommands.Add(create);
        datasets.Subcommands.Add(get);
        return datasets;
    }
}
