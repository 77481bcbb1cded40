using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text.Json;
using System.Text.RegularExpressions;
using Platform.Contracts;
using Platform.Contracts.Api;

namespace Platform.Cli.Commands;

/// <summary>A job input from <c>--input name=FILE|CID</c>: a CID already pinned, or a file to pin first.</summary>
public sealed record JobInput(string Name, string? Cid, string? File);

/// <summary>Parses <c>--input name=FILE|CID</c> and <c>--param k=v</c>.</summary>
public static partial class JobArguments
{
    [GeneratedRegex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]
    private static partial Regex NamePattern();

    /// <summary>
    /// <c>name=value</c>: a value that is a CID is used as it is; otherwise it must name an existing file. A CID
    /// wins over a file of the same name, which nobody keeps.
    /// </summary>
    public static JobInput ParseInput(string text)
    {
        var (name, value) = Split(text, "--input", "name=FILE or name=CID");
        if (Cid.TryParse(value, out var cid))
            return new JobInput(name, cid.Value, null);
        if (File.Exists(value))
            return new JobInput(name, null, Path.GetFullPath(value));
        throw new UsageException(value.StartsWith("bafk", StringComparison.Ordinal)
            ? $"--input {name}: '{value}' is not a valid CID (CIDv1 raw sha2-256 base32, 59 characters) and no such file exists"
            : $"--input {name}: no file '{value}' (and it is not a CID)");
    }

    /// <summary><c>k=v</c>; the value is kept as text (the API reads numbers given as strings the same).</summary>
    public static KeyValuePair<string, string> ParseParam(string text)
    {
        var (name, value) = Split(text, "--param", "k=v");
        return new(name, value);
    }

    public static Option<List<JobInput>> InputOption() => new("--input", "-i")
    {
        Description = "An input: name=FILE (pinned first) or name=CID; repeat for each",
        Arity = ArgumentArity.OneOrMore,
        Required = true,
        CustomParser = r => ParseAll(r, ParseInput, input => input.Name),
    };

    public static Option<List<KeyValuePair<string, string>>> ParamOption() => new("--param", "-p")
    {
        Description = "A kernel parameter k=v; repeat for each",
        Arity = ArgumentArity.ZeroOrMore,
        CustomParser = r => ParseAll(r, ParseParam, p => p.Key),
    };

    private static readonly JsonSerializerOptions BatchJson = new(JsonSerializerDefaults.Web);

    /// <summary>
    /// The jobs of a <c>jobs submit-batch</c> FILE (named <paramref name="source"/> in errors): <c>{"jobs": [...]}</c>
    /// or a bare array, each entry as POST /v1/jobs takes it. Inputs must be CIDs: a batch pins no files, and a
    /// path in the file would otherwise reach the gateway as a bad CID in entry after entry.
    /// </summary>
    public static IReadOnlyList<SubmitJobRequest> ParseBatch(string json, string source)
    {
        List<SubmitJobRequest?>? jobs;
        try
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            jobs = root.ValueKind switch
            {
                JsonValueKind.Array => root.Deserialize<List<SubmitJobRequest?>>(BatchJson),
                JsonValueKind.Object when root.TryGetProperty("jobs", out var list) => list.Deserialize<List<SubmitJobRequest?>>(BatchJson),
                _ => null,
            };
        }
        catch (JsonException e)
        {
            throw new UsageException($"{source}: not a batch of jobs: {e.Message}");
        }
        if (jobs is null)
            throw new UsageException($"{source}: not a batch of jobs: expected {{\"jobs\": [...]}} or an array of jobs");
        var parsed = new List<SubmitJobRequest>(jobs.Count);
        for (var i = 0; i < jobs.Count; i++)
        {
            if (jobs[i] is not { } job)
                throw new UsageException($"{source}: jobs[{i}] is null, not a job");
            foreach (var (name, value) in job.Inputs ?? new Dictionary<string, string>())
            {
                if (!Cid.TryParse(value, out _))
                    throw new UsageException($"{source}: jobs[{i}].inputs.{name}: '{value}' is not a CID (a batch pins no files: pin it with 'platform blobs put' first)");
            }
            parsed.Add(job);
        }
        return parsed;
    }

    // Errors are reported through the parser, so they print like every other usage error.
    private static List<T> ParseAll<T>(ArgumentResult result, Func<string, T> parse, Func<T, string> nameOf)
    {
        var parsed = new List<T>();
        foreach (var token in result.Tokens)
        {
            try
            {
                var item = parse(token.Value);
                if (parsed.Any(p => nameOf(p) == nameOf(item)))
                    result.AddError($"{nameOf(item)} is given twice");
                else
                    parsed.Add(item);
            }
            catch (UsageException e)
            {
                result.AddError(e.Message);
            }
        }
        return parsed;
    }

    private static (string Name, string Value) Split(string text, string option, string form)
    {
        var at = text.IndexOf('=', StringComparison.Ordinal);
        if (at <= 0 || at == text.Length - 1)
            throw new UsageException($"{option} '{text}' is not {form}");
        var name = text[..at];
        if (!NamePattern().IsMatch(name))
            throw new UsageException($"{option} '{text}': '{name}' is not a name (letters, digits, '_', '.', '-')");
        return (name, text[(at + 1)..]);
    }
}
