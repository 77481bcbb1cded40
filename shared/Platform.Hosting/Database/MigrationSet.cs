using System.Reflection;

namespace Platform.Hosting.Database;

public sealed record Migration(string Id, string Sql);

/// <summary>Numbered SQL files embedded as <c>Migrations/NNNN_name.sql</c>, applied in order.</summary>
public sealed class MigrationSet(IReadOnlyList<Migration> migrations)
{
    public IReadOnlyList<Migration> Migrations { get; } = migrations;

    public static IEnumerable<Migration> FromAssembly(Assembly assembly, string scope)
    {
        const string marker = ".Migrations.";
        return assembly.GetManifestResourceNames()
            .Where(n => n.Contains(marker, StringComparison.Ordinal) && n.EndsWith(".sql", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .Select(n =>
            {
                using var stream = assembly.GetManifestResourceStream(n)!;
                using var reader = new StreamReader(stream);
                var file = n[(n.IndexOf(marker, StringComparison.Ordinal) + marker.Length)..];
                return new Migration($"{scope}/{file}", reader.ReadToEnd());
            })
            .ToList();
    }
}
