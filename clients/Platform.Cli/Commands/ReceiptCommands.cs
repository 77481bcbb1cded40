using System.CommandLine;
using System.Security.Cryptography;
using System.Text.Json;
using Platform.Contracts;
using Platform.Contracts.Receipts;

namespace Platform.Cli.Commands;

/// <summary>Fetching a job's signed receipt, and checking one offline.</summary>
public static class ReceiptCommands
{
    /// <summary>platform jobs receipt ID [-o FILE]: the receipt's exact bytes, to a file or stdout.</summary>
    public static Command Fetch(CliHost host)
    {
        var id = new Argument<string>("ID") { Description = "The completed job's id" };
        var output = new Option<FileInfo?>("--output", "-o") { Description = "Write the receipt here (default: stdout)" };
        var receipt = new Command("receipt", "Fetch a completed job's signed receipt; check it with 'platform verify FILE'") { id, output };
        receipt.SetRun(host, async (s, ct) =>
        {
            var bytes = await FetchSettledAsync(s.Client, s.Get(id), ct);
            if (s.Get(output) is not { } file)
            {
                // The bytes as they came: a re-encoded receipt no longer verifies.
                s.Host.Output.Write(System.Text.Encoding.UTF8.GetString(bytes));
                return 0;
            }
            await File.WriteAllBytesAsync(file.FullName, bytes, ct);
            s.Host.Error.WriteLine($"receipt of {s.Get(id)} written to {file.FullName}; check it with 'platform verify {file.Name}'");
            return 0;
        });
        return receipt;
    }

    // A job's receipt waits for its payment, which settles a moment after it completes (409 receipt-pending):
    // asked right after `jobs submit --wait`, it is worth waiting for rather than failing.
    private static async Task<byte[]> FetchSettledAsync(Platform.Client.PlatformClient client, string jobId, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                return await client.GetReceiptAsync(jobId, ct);
            }
            catch (Platform.Client.PlatformApiException ex) when (ex.Problem?.Slug == "receipt-pending" && DateTime.UtcNow < deadline)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), ct);
            }
        }
    }

    /// <summary>platform verify RECEIPT: offline, no key, no network.</summary>
    public static Command Verify(CliHost host)
    {
        var file = new Argument<FileInfo>("RECEIPT") { Description = "The receipt file, as 'platform jobs receipt' wrote it" };
        var platformKey = new Option<string?>("--platform-key")
        {
            Description = "The platform key to trust (base64, from GET /v1/receipts/key); without it the key in the receipt is used",
        };
        var outputs = new Option<DirectoryInfo?>("--outputs") { Description = "Check local copies of the outputs: DIR/NAME.npy or DIR/NAME for each output" };
        var output = new Option<string[]>("--output")
        {
            Description = "Check one local output file: NAME=FILE (repeatable)",
            AllowMultipleArgumentsPerToken = false,
            Arity = ArgumentArity.ZeroOrMore,
        };
        var verify = new Command("verify", "Check a job receipt offline: the platform's and every worker's signature, the totals, and local output files")
        {
            file, platformKey, outputs, output,
        };
        verify.SetRun(host, async (s, ct) =>
        {
            var receiptFile = s.Get(file);
            if (!receiptFile.Exists)
                throw new UsageException($"{receiptFile.FullName} does not exist");
            var bytes = await File.ReadAllBytesAsync(receiptFile.FullName, ct);
            var local = await LocalOutputsAsync(bytes, s.Get(outputs), s.Get(output) ?? [], ct);
            var result = ReceiptVerifier.Verify(bytes, s.Get(platformKey)?.Trim(), local);
            if (s.Json)
            {
                s.Host.Output.WriteLine(JsonSerializer.Serialize(new { verified = result.Verified, checks = result.Checks }, Output.Json));
            }
            else
            {
                foreach (var check in result.Checks)
                    (check.Passed ? s.Host.Output : s.Host.Error).WriteLine($"{(check.Passed ? "ok  " : "FAIL")}  {check.Name}: {check.Detail}");
                s.Host.Output.WriteLine(result.Verified
                    ? $"verified: receipt of {result.Receipt!.Receipt.JobId}"
                    : $"NOT verified: {result.Failures.Count()} check(s) failed");
            }
            return result.Verified ? 0 : Cli.Failed;
        });
        return verify;
    }

    private static async Task<Dictionary<string, Cid>> LocalOutputsAsync(byte[] receipt, DirectoryInfo? dir, string[] pairs, CancellationToken ct)
    {
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in pairs)
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || eq == pair.Length - 1)
                throw new UsageException($"--output '{pair}' must be NAME=FILE");
            files[pair[..eq]] = pair[(eq + 1)..];
        }
        if (dir is not null)
        {
            if (!dir.Exists)
                throw new UsageException($"{dir.FullName} does not exist");
            IEnumerable<string> names;
            try
            {
                names = ReceiptJson.Parse(receipt).Receipt.Outputs.Keys;
            }
            catch (JsonException)
            {
                names = []; // the verification says what is wrong with the file
            }
            foreach (var name in names.Where(n => !files.ContainsKey(n)))
            {
                var candidates = new[] { Path.Combine(dir.FullName, name + ".npy"), Path.Combine(dir.FullName, name) };
                files[name] = candidates.FirstOrDefault(File.Exists)
                    ?? throw new UsageException($"no local copy of output '{name}' in {dir.FullName} (looked for {name}.npy and {name})");
            }
        }
        var cids = new Dictionary<string, Cid>(StringComparer.Ordinal);
        foreach (var (name, path) in files)
        {
            if (!File.Exists(path))
                throw new UsageException($"{path} does not exist");
            await using var stream = File.OpenRead(path);
            cids[name] = Cid.FromSha256(await SHA256.HashDataAsync(stream, ct));
        }
        return cids;
    }
}
