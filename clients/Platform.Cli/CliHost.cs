using Spectre.Console;

namespace Platform.Cli;

/// <summary>
/// Where the command line writes and what it reads from its surroundings, so tests can run it in process.
/// Results go to <see cref="Output"/> (stdout); progress, live views and errors to <see cref="Error"/> (stderr),
/// so <c>CID=$(platform blobs put a.npy)</c> captures the CID alone.
/// </summary>
public sealed record CliHost(TextWriter Output, TextWriter Error, IAnsiConsole Out, IAnsiConsole Status, Func<string, string?> Environment)
{
    public static CliHost FromProcess()
    {
        var stdout = Create(Console.Out, Console.IsOutputRedirected);
        var stderr = Create(Console.Error, Console.IsErrorRedirected);
        return new CliHost(Console.Out, Console.Error, stdout, stderr, System.Environment.GetEnvironmentVariable) { Input = Console.In };
    }

    /// <summary>stdin, for commands that read a FILE given as <c>-</c>; empty unless set.</summary>
    public TextReader Input { get; init; } = TextReader.Null;

    /// <summary>Plain text, no colours, no live rendering: what a test or a pipe reads.</summary>
    public static CliHost Plain(TextWriter output, TextWriter error, IReadOnlyDictionary<string, string?> environment) =>
        new(output, error, Create(output, redirected: true), Create(error, redirected: true), name => environment.GetValueOrDefault(name));

    private static IAnsiConsole Create(TextWriter writer, bool redirected)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = redirected ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = redirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
            Interactive = redirected ? InteractionSupport.No : InteractionSupport.Detect,
        });
        // A pipe has no width; 80 columns would wrap every CID in a table.
        if (redirected)
            console.Profile.Width = 240;
        return console;
    }
}
