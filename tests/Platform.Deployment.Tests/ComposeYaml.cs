using System.Text.RegularExpressions;

namespace Platform.Deployment.Tests;

/// <summary>
/// Reads the subset of YAML the compose files use, without a YAML package: block mappings and sequences by
/// indentation, anchors on mappings (<c>key: &amp;name</c>), merge keys (<c>&lt;&lt;: *name</c>, the
/// mapping's own keys winning), literal block scalars (<c>|</c>) and plain or quoted scalars. Flow sequences
/// (<c>["CMD", ...]</c>) stay as their text. Mappings become dictionaries, sequences lists, scalars strings.
/// </summary>
public static partial class ComposeYaml
{
    private sealed record Line(int Indent, string Text);

    public static Dictionary<string, object> Load(string path)
    {
        var lines = File.ReadLines(path)
            .Where(l => l.Trim().Length > 0 && !l.TrimStart().StartsWith('#'))
            .Select(l => new Line(l.Length - l.TrimStart().Length, l.Trim()))
            .ToList();
        var position = 0;
        var anchors = new Dictionary<string, Dictionary<string, object>>();
        return (Dictionary<string, object>)Block(lines, ref position, 0, anchors);
    }

    /// <summary>The mapping at <paramref name="path"/> (keys separated by '/'), or an empty one.</summary>
    public static Dictionary<string, object> Map(this Dictionary<string, object> node, string path)
    {
        object current = node;
        foreach (var key in path.Split('/'))
        {
            if (current is not Dictionary<string, object> map || !map.TryGetValue(key, out var next))
                return [];
            current = next;
        }
        return current as Dictionary<string, object> ?? [];
    }

    public static string? Scalar(this Dictionary<string, object> node, string key) =>
        node.TryGetValue(key, out var value) ? value as string : null;

    private static object Block(List<Line> lines, ref int position, int indent, Dictionary<string, Dictionary<string, object>> anchors)
    {
        if (position < lines.Count && lines[position].Text.StartsWith("- ", StringComparison.Ordinal))
        {
            var list = new List<object>();
            while (position < lines.Count && lines[position].Indent == indent && lines[position].Text.StartsWith("- ", StringComparison.Ordinal))
            {
                var item = lines[position++].Text[2..].Trim();
                if (position < lines.Count && lines[position].Indent > indent && Entry().Match(item) is { Success: true } first)
                {
                    // "- key: value" followed by more keys of the same mapping, indented under it.
                    var entries = (Dictionary<string, object>)Block(lines, ref position, lines[position].Indent, anchors);
                    entries[Unquote(first.Groups["key"].Value)] = Unquote(first.Groups["value"].Value.Trim());
                    list.Add(entries);
                }
                else
                {
                    list.Add(Unquote(item));
                }
            }
            return list;
        }

        var map = new Dictionary<string, object>();
        var merged = new Dictionary<string, object>();
        while (position < lines.Count && lines[position].Indent == indent)
        {
            var line = lines[position++];
            var entry = Entry().Match(line.Text);
            if (!entry.Success)
                throw new FormatException($"not a 'key: value' line: {line.Text}");
            var key = Unquote(entry.Groups["key"].Value);
            var value = entry.Groups["value"].Value.Trim();

            if (key == "<<")
            {
                foreach (var (k, v) in anchors[value.TrimStart('*')])
                    merged[k] = v;
                continue;
            }
            string? anchor = null;
            if (value.StartsWith('&'))
            {
                anchor = value[1..];
                value = "";
            }
            if (value == "|")
            {
                var text = new List<string>();
                while (position < lines.Count && lines[position].Indent > indent)
                    text.Add(lines[position++].Text);
                map[key] = string.Join('\n', text) + "\n";
            }
            else if (value.Length > 0)
            {
                map[key] = Unquote(value);
            }
            else if (position < lines.Count && lines[position].Indent > indent)
            {
                map[key] = Block(lines, ref position, lines[position].Indent, anchors);
            }
            else
            {
                map[key] = new Dictionary<string, object>();
            }
            if (anchor is not null)
                anchors[anchor] = (Dictionary<string, object>)map[key];
        }
        foreach (var (k, v) in merged)
            map.TryAdd(k, v);
        return map;
    }

    private static string Unquote(string value) =>
        value.Length >= 2 && (value[0] == '"' || value[0] == '\'') && value[^1] == value[0] ? value[1..^1] : value;

    [GeneratedRegex(@"^(?<key>""[^""]+""|'[^']+'|[^:\s]+|<<):(\s+(?<value>.*))?$")]
    private static partial Regex Entry();
}
