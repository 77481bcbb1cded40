using System.CommandLine;
using Platform.Contracts.Api;

namespace Platform.Cli.Commands;

public static class BlobsCommands
{
    public static Command Build(CliHost host)
    {
        var blobs = new Command("blobs", "Pin files permanently and fetch them back, verified against their CID");

        var file = new Argument<FileInfo>("FILE") { Description = "The file to pin" };
        var put = new Command("put", "Pin a file; prints its CID") { file };
        put.SetRun(host, async (s, ct) =>
        {
            var info = s.Get(file);
            if (!info.Exists)
                throw new UsageException($"{info.FullName} does not exist");
            var pinned = await PinFileAsync(s, info, ct);
            s.Show(pinned, p =>
            {
                s.Host.Output.WriteLine(p.Cid);
                s.Host.Error.WriteLine($"pinned {info.Name} ({Output.Bytes(p.Size)})");
            });
            return 0;
        });

        var cid = new Argument<string>("CID") { Description = "The blob's CID (bafkrei...)" };
        var output = new Option<FileInfo>("--output", "-o") { Description = "Where to write the blob", Required = true };
        var get = new Command("get", "Download a blob, checking every byte against its CID") { cid, output };
        get.SetRun(host, async (s, ct) =>
        {
            var target = s.Get(output);
            var size = await DownloadAsync(s, s.Get(cid), target.FullName, ct);
            s.Show(new { cid = s.Get(cid), size, file = target.FullName }, _ =>
                s.Host.Output.WriteLine($"{target.Name}  {Output.Bytes(size)}  verified against {s.Get(cid)}"));
            return 0;
        });

        var statusCid = new Argument<string>("CID") { Description = "The blob's CID" };
        var status = new Command("status", "Where a blob is kept: copies, replicas, last verification") { statusCid };
        status.SetRun(host, async (s, ct) =>
        {
            var pin = await s.Client.GetPinStatusAsync(s.Get(statusCid), ct);
            s.Show(pin, p =>
            {
                s.Host.Out.Write(Output.Facts(("cid", p.Cid), ("size", Output.Bytes(p.Size)), ("sha256", p.Sha256), ("owner", p.Owner),
                    ("pinned", Output.Time(p.PinnedAt)), ("replicas", $"{p.Replicas.Count} of {p.ReplicaTarget}"), ("merkle root", p.MerkleRoot),
                    ("chunks", p.Chunks.ToString(System.Globalization.CultureInfo.InvariantCulture)), ("last verified", Output.Time(p.LastVerifiedAt))));
                var copies = Output.Table("node", "status", "verified");
                foreach (var c in p.Copies)
                    copies.Row(c.NodeId, c.Status, Output.Time(c.VerifiedAt));
                s.Host.Out.Write(copies);
            });
            return 0;
        });

        blobs.Subcommands.Add(put);
        blobs.Subcommands.Add(get);
        blobs.Subcommands.Add(status);
        return blobs;
    }

    /// <summary>Pins a file, streamed, with a progress bar.</summary>
    public static async Task<PinResponse> PinFileAsync(Session s, FileInfo file, CancellationToken ct)
    {
        await using var stream = file.OpenRead();
        return await s.WithProgressAsync($"uploading {file.Name}", file.Length, progress => s.Client.PutBlobAsync(stream, progress, ct));
    }

    /// <summary>
    /// Downloads into a temporary file beside <paramref name="path"/> and moves it into place only once the bytes
    /// matched the CID, so a corrupt download never leaves a file that looks finished.
    /// </summary>
    public static async Task<long> DownloadAsync(Session s, string cid, string path, CancellationToken ct)
    {
        var partial = path + ".partial";
        try
        {
            long size;
            await using (var blob = await s.Client.OpenBlobAsync(cid, null, ct))
            await using (var file = File.Create(partial))
            {
                size = await s.WithProgressAsync($"downloading {Path.GetFileName(path)}", blob.Length, async progress =>
                {
                    var buffer = new byte[81920];
                    long total = 0;
                    int n;
                    while ((n = await blob.Stream.ReadAsync(buffer, ct)) > 0)
                    {
                        await file.WriteAsync(buffer.AsMemory(0, n), ct);
                        total += n;
                        progress?.Report(total);
                    }
                    return total;
                });
            }
            File.Move(partial, path, overwrite: true);
            return size;
        }
        finally
        {
            File.Delete(partial);
        }
    }
}
