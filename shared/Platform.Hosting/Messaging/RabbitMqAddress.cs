namespace Platform.Hosting.Messaging;

/// <summary>
/// The parts of an amqp:// URI, parsed here so a malformed one fails at start with a clear message. A RabbitMQ cluster
/// is given as several URIs separated by commas, one per node, with the same login and vhost
/// (<c>amqp://user:pass@rabbit-1:5672/,amqp://user:pass@rabbit-2:5672/</c>): <see cref="Host"/> and <see cref="Port"/>
/// are the first node's, <see cref="Nodes"/> lists them all, and a client connects to whichever answers.
/// </summary>
public sealed record RabbitMqAddress(string Host, ushort Port, string VirtualHost, string Username, string Password)
{
    /// <summary>Every node as <c>host:port</c>, the first one first; one entry for a single broker.</summary>
    public IReadOnlyList<string> Nodes { get; init; } = [$"{Host}:{Port}"];

    public static RabbitMqAddress Parse(string uri)
    {
        var nodes = uri.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(ParseOne).ToList();
        if (nodes.Count == 0)
            throw new InvalidOperationException("ConnectionStrings:RabbitMq is empty: give an amqp:// URI, for example amqp://user:password@localhost:5672/vhost");
        var first = nodes[0];
        if (nodes.Any(n => n.VirtualHost != first.VirtualHost || n.Username != first.Username || n.Password != first.Password))
            throw new InvalidOperationException("ConnectionStrings:RabbitMq lists nodes of one cluster: every URI must have the same user, password and vhost");
        return first with { Nodes = [.. nodes.Select(n => $"{n.Host}:{n.Port}").Distinct()] };
    }

    private static RabbitMqAddress ParseOne(string uri)
    {
        if (!Uri.TryCreate(uri, UriKind.Absolute, out var u) || (u.Scheme != "amqp" && u.Scheme != "rabbitmq"))
            throw new InvalidOperationException("ConnectionStrings:RabbitMq must be an amqp:// URI (or several, comma-separated, for a cluster), for example amqp://user:password@localhost:5672/vhost");
        var user = "guest";
        var password = "guest";
        if (!string.IsNullOrEmpty(u.UserInfo))
        {
            var parts = u.UserInfo.Split(':', 2);
            user = Uri.UnescapeDataString(parts[0]);
            password = parts.Length > 1 ? Uri.UnescapeDataString(parts[1]) : "";
        }
        var path = u.AbsolutePath.TrimStart('/');
        var vhost = path.Length == 0 ? "/" : Uri.UnescapeDataString(path);
        return new RabbitMqAddress(u.Host, (ushort)(u.IsDefaultPort || u.Port <= 0 ? 5672 : u.Port), vhost, user, password);
    }

    // The node list by its contents, not its reference.
    public bool Equals(RabbitMqAddress? other) =>
        other is not null && Host == other.Host && Port == other.Port && VirtualHost == other.VirtualHost && Username == other.Username
        && Password == other.Password && Nodes.SequenceEqual(other.Nodes);

    public override int GetHashCode() => HashCode.Combine(Host, Port, VirtualHost, Username, Password, string.Join(',', Nodes));

    /// <summary>Without the password, so logging an address never writes a credential.</summary>
    public override string ToString() => $"amqp://{Username}@{string.Join(',', Nodes)}/{VirtualHost}";
}
