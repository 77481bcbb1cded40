using System.CommandLine;
using System.CommandLine.Invocation;
using System.Net;
using Platform.Cli.Commands;
using Platform.Client;

namespace Platform.Cli;

/// <summary>The command tree and how every command runs: settings resolved, errors as one line and an exit code.</summary>
public static class Cli
{
    public const int Failed = 1;
    public const int Usage = 2;
    /// <summary>Downloaded bytes did not match their CID.</summary>
    public const int Corrupt = 3;
    public const int Interrupted = 130;

    public static readonly Option<string?> Url = new("--url") { Description = "Gateway URL (default: PLATFORM_URL, then http://127.0.0.1:8080)", Recursive = true };
    public static readonly Option<string?> Key = new("--key") { Description = "API key (default: PLATFORM_KEY, then the key saved by 'login')", Recursive = true };
    public static readonly Option<bool> Json = new("--json") { Description = "Machine output: JSON on stdout", Recursive = true };

    public static RootCommand Build(CliHost host)
    {
        var root = new RootCommand("Platform: pin data, run compute jobs and run a node on the open compute network.");
        root.Options.Add(Url);
        root.Options.Add(Key);
        root.Options.Add(Json);
        root.Subcommands.Add(BlobsCommands.Build(host));
        root.Subcommands.Add(DatasetsCommands.Build(host));
        root.Subcommands.Add(JobsCommands.Build(host));
        root.Subcommands.Add(AccountCommands.Build(host));
        root.Subcommands.Add(NetworkCommands.Workers(host));
        root.Subcommands.Add(NetworkCommands.Network(host));
        root.Subcommands.Add(NetworkCommands.Kernels(host));
        root.Subcommands.Add(NodeCommands.Build(host));
        root.Subcommands.Add(AccountCommands.Login(host));
        root.Subcommands.Add(AccountCommands.Admin(host));
        root.Subcommands.Add(ReceiptCommands.Verify(host));
        return root;
    }

    public static async Task<int> RunAsync(string[] args, CliHost host, CancellationToken ct = default)
    {
        var parse = Build(host).Parse(args);
        // Usage mistakes as short "error:" lines and a pointer to the help, rather than the whole help page.
        if (parse.Action is ParseErrorAction)
        {
            foreach (var error in parse.Errors)
                await host.Error.WriteLineAsync("error: " + error.Message);
            await host.Error.WriteLineAsync($"see '{string.Join(' ', CommandPath(parse.CommandResult))} --help'");
            return Usage;
        }
        return await parse.InvokeAsync(new InvocationConfiguration
        {
            Output = host.Output,
            Error = host.Error,
            // Our actions report their own errors; the default handler would print a stack trace.
            EnableDefaultExceptionHandler = false,
            // Ctrl-C cancels the action's token; 'node start' then needs a moment to stop its worker.
            ProcessTerminationTimeout = TimeSpan.FromSeconds(20),
        }, ct);
    }

    private static IEnumerable<string> CommandPath(System.CommandLine.Parsing.CommandResult? command) =>
        command is null ? [] : CommandPath(command.Parent as System.CommandLine.Parsing.CommandResult).Append(command.Command is RootCommand ? "platform" : command.Command.Name);

    /// <summary>Runs <paramref name="run"/> as the command's action, turning every expected failure into one line on stderr.</summary>
    public static void SetRun(this Command command, CliHost host, Func<Session, CancellationToken, Task<int>> run) =>
        command.SetAction(async (parse, ct) =>
        {
            Session? session = null;
            try
            {
                session = new Session(host, parse);
                return await run(session, ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return Interrupted;
            }
            catch (Exception e) when (Describe(e, session) is var (message, code))
            {
                await host.Error.WriteLineAsync("error: " + message);
                return code;
            }
            finally
            {
                session?.Dispose();
            }
        });

    private static (string Message, int Code)? Describe(Exception e, Session? session) => e switch
    {
        PlatformApiException { StatusCode: HttpStatusCode.Unauthorized } api => (api.Message + " (set PLATFORM_KEY, pass --key or run 'platform login')", Failed),
        PlatformApiException api => (api.Message, Failed),
        CidMismatchException corrupt => (corrupt.Message, Corrupt),
        UsageException or FormatException or ArgumentException => (e.Message, Usage),
        HttpRequestException http => ($"cannot reach the gateway at {session?.Settings.Url}: {http.Message}", Failed),
        IOException or UnauthorizedAccessException or System.Text.Json.JsonException => (e.Message, Failed),
        CommandFailedException failed => (failed.Message, failed.ExitCode),
        _ => null,
    };
}

/// <summary>A command ran and the outcome is a failure it has described (a job that failed, a node that stopped).</summary>
public sealed class CommandFailedException(string message, int exitCode = Cli.Failed) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>What one command invocation works with: its settings, a client, and the output for its mode.</summary>
public sealed class Session : IDisposable
{
    private readonly Lazy<PlatformClient> _client;

    public Session(CliHost host, ParseResult parse)
    {
        Host = host;
        Parse = parse;
        Settings = Settings.Resolve(parse.GetValue(Cli.Url), parse.GetValue(Cli.Key), host.Environment);
        Json = parse.GetValue(Cli.Json);
        _client = new(() => new PlatformClient(Settings.Url, Settings.Key));
    }

    public CliHost Host { get; }
    public ParseResult Parse { get; }
    public Settings Settings { get; }
    public bool Json { get; }
    public PlatformClient Client => _client.Value;

    public T Get<T>(Option<T> option) => Parse.GetValue(option)!;
    public T Get<T>(Argument<T> argument) => Parse.GetValue(argument)!;

    /// <summary>Prints <paramref name="value"/> as JSON (--json) or runs <paramref name="human"/>.</summary>
    public void Show<T>(T value, Action<T> human)
    {
        if (Json)
            Host.Output.WriteLine(System.Text.Json.JsonSerializer.Serialize(value, Output.Json));
        else
            human(value);
    }

    public void Dispose()
    {
        if (_client.IsValueCreated)
            _client.Value.Dispose();
    }
}
