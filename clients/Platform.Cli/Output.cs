using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Platform.Cli;

/// <summary>How results are shown: tables for people, indented JSON with --json.</summary>
public static class Output
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true, Encoder = Readable };

    /// <summary>Lines of JSON (a stream of events).</summary>
    public static readonly JsonSerializerOptions JsonLines = new(JsonSerializerDefaults.Web) { Encoder = Readable };

    // The output goes to a terminal or a script, never into HTML: a base64 key's "+", "&" and "'" are written as they
    // are, not as \u002B, \u0026 and \u0027 (the default encoder's guard for HTML pages). Times never went through it.
    private static JavaScriptEncoder Readable => JavaScriptEncoder.UnsafeRelaxedJsonEscaping;

    public static string Credits(decimal? value) => value is { } v ? v.ToString("0.######", CultureInfo.InvariantCulture) : "-";

    public static string Bytes(long bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => $"{bytes / 1024.0:0.#} KiB",
        < 1024L * 1024 * 1024 => $"{bytes / (1024.0 * 1024):0.#} MiB",
        _ => $"{bytes / (1024.0 * 1024 * 1024):0.##} GiB",
    };

    public static string Time(DateTimeOffset? at) => at is { } t ? t.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) : "-";

    public static string Percent(double fraction) => fraction.ToString("0%", CultureInfo.InvariantCulture);

    /// <summary>
    /// Three significant digits, in scientific notation outside 0.01..99,999 (1.1e6): joules per GFLOP of a small
    /// job run to millions, those of a big one on a GPU to hundredths.
    /// </summary>
    public static string Significant(double value)
    {
        var rounded = double.Parse(value.ToString("G3", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        var magnitude = Math.Abs(rounded);
        if (magnitude != 0 && (magnitude >= 1e5 || magnitude < 0.01))
        {
            var parts = rounded.ToString("0.##E+0", CultureInfo.InvariantCulture).Split('E');
            return $"{parts[0]}e{int.Parse(parts[1], CultureInfo.InvariantCulture)}";
        }
        return rounded.ToString("0.###", CultureInfo.InvariantCulture);
    }

    /// <summary>Joules with a unit that keeps the number short: 0.58 J, 12.4 kJ, 3.1 MJ.</summary>
    public static string Joules(double joules)
    {
        string[] units = ["J", "kJ", "MJ", "GJ"];
        var unit = 0;
        while (Math.Abs(joules) >= 1000 && unit < units.Length - 1)
        {
            joules /= 1000;
            unit++;
        }
        return $"{Significant(joules)} {units[unit]}";
    }

    /// <summary>Where energy figures came from: a power sensor, an estimate from calibrated power and time, or both.</summary>
    public static string EnergySource(double measuredShare) => measuredShare switch
    {
        >= 1 => "measured",
        <= 0 => "estimated",
        _ => $"{Percent(measuredShare)} measured",
    };

    /// <summary>A borderless table whose cells are plain text (never markup: values come from the network).</summary>
    public static Table Table(params string[] columns)
    {
        var table = new Table().Border(TableBorder.Simple);
        foreach (var column in columns)
            table.AddColumn(new TableColumn(column));
        return table;
    }

    public static Table Row(this Table table, params string?[] cells)
    {
        table.AddRow(cells.Select(c => (IRenderable)new Text(c ?? "-")).ToArray());
        return table;
    }

    /// <summary>A warning on stderr, yellow where the terminal has colours: it never mixes into results on stdout.</summary>
    public static void Warn(CliHost host, string message) =>
        host.Status.MarkupLine($"[yellow]warning: {Markup.Escape(message)}[/]");

    /// <summary>Two columns of name and value.</summary>
    public static Grid Facts(params (string Name, string? Value)[] facts)
    {
        var grid = new Grid().AddColumn(new GridColumn().PadRight(3)).AddColumn();
        foreach (var (name, value) in facts)
            grid.AddRow(new Text(name), new Text(value ?? "-"));
        return grid;
    }
}
