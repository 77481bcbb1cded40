namespace Platform.Hosting.Messaging;

/// <summary>The parts of an amqp:// URI, parsed here so a malformed one fails at start with a clear message.</summary>
public sealed record RabbitMqAddress(string Host, ushort Port, string VirtualHost, string Username, string Password)
{
    public static RabbitMqAddress Parse(string uri)
    {
        if (!Uri.TryCreate(uri, UriKind.Absolute, out var u) || (u.Scheme != "amqp" && u.Scheme != "rabbitmq"))
            throw new InvalidOperationException("ConnectionStrings:RabbitMq must be an amqp:// URI, for example amqp://user:password@localhost:5672/vhost");
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

    /// <summary>Without the password, so logging an address never writes a credential.</summary>
    public override string ToString() => $"amqp://{Username}@{Host}:{Port}/{VirtualHost}";
}
