using System.Text.Json;

namespace Platform.Cli;

/// <summary>The gateway and key to use: --url/--key, else PLATFORM_URL/PLATFORM_KEY, else what <c>login</c> saved.</summary>
public sealed record Settings(Uri Url, string? Key)
{
    public const string DefaultUrl = "http://127.0.0.1:8080";

    public sealed record Saved(string? Url, string? Key);

    public static Settings Resolve(string? urlFlag, string? keyFlag, Func<string, string?> env)
    {
        var saved = Load(env);
        var url = First(urlFlag, env("PLATFORM_URL"), saved?.Url) ?? DefaultUrl;
        if (!Uri.TryCreate(url.EndsWith('/') ? url : url + "/", UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new UsageException($"'{url}' is not an http(s) URL (from --url, PLATFORM_URL or {ConfigPath(env)})");
        return new Settings(uri, First(keyFlag, env("PLATFORM_KEY"), saved?.Key));
    }

    /// <summary>~/.config/platform/config.json (or under XDG_CONFIG_HOME).</summary>
    public static string ConfigPath(Func<string, string?> env)
    {
        var root = env("XDG_CONFIG_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(env("HOME") ?? System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile), ".config");
        return Path.Combine(root, "platform", "config.json");
    }

    public static Saved? Load(Func<string, string?> env)
    {
        var path = ConfigPath(env);
        if (!File.Exists(path))
            return null;
        try
        {
            return JsonSerializer.Deserialize<Saved>(File.ReadAllText(path), Output.Json);
        }
        catch (JsonException e)
        {
            throw new UsageException($"{path} is not valid JSON ({e.Message}); fix or delete it");
        }
    }

    /// <summary>Writes the file readable by its owner only: it holds an API key.</summary>
    public static string Save(Saved saved, Func<string, string?> env)
    {
        var path = ConfigPath(env);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using var file = new StreamWriter(path, System.Text.Encoding.UTF8, options);
        file.Write(JsonSerializer.Serialize(saved, Output.Json));
        return path;
    }

    private static string? First(params string?[] values) => values.FirstOrDefault(v => !string.IsNullOrWhiteSpace(v));
}

/// <summary>The command line was used wrongly: printed as one line, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);
