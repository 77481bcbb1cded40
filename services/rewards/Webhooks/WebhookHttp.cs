using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Platform.Rewards.Webhooks;

/// <summary>
/// The HTTP client deliveries go out on. The address is checked where the connection is made, after the name is
/// resolved, so a name that resolved to a public address when the webhook was set and to an inside one now (DNS
/// rebinding) is refused too. No redirects (a public receiver could redirect inwards), no proxy from the
/// environment, no cookies.
/// </summary>
public static class WebhookHttp
{
    public const string ClientName = "webhooks";

    public static SocketsHttpHandler CreateHandler(WebhookOptions options) => new()
    {
        AllowAutoRedirect = false,
        UseProxy = false,
        UseCookies = false,
        ConnectTimeout = options.Timeout,
        PooledConnectionLifetime = TimeSpan.FromMinutes(2),
        ConnectCallback = async (context, ct) =>
        {
            var host = context.DnsEndPoint.Host.Trim('[', ']');
            var addresses = IPAddress.TryParse(host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, ct);
            var allowed = options.AllowPrivateAddresses ? addresses : addresses.Where(PublicAddresses.IsPublic).ToArray();
            if (allowed.Length == 0)
                throw new WebhookAddressRefusedException(host);
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(allowed, context.DnsEndPoint.Port, ct);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };
}

/// <summary>A webhook's host has no address it may reach (see <see cref="PublicAddresses"/>).</summary>
public sealed class WebhookAddressRefusedException(string host)
    : Exception($"{host} has no public address; webhooks are sent to public addresses only");

/// <summary>
/// Signing as Standard Webhooks (standardwebhooks.com) describes, which receivers' libraries verify: the secret is
/// <c>whsec_</c> and the base64 of 24 random bytes, and each attempt carries <c>webhook-id</c> (the same on every
/// attempt of one event: receivers deduplicate by it), <c>webhook-timestamp</c> (Unix seconds; receivers refuse old
/// ones, so a captured delivery cannot be replayed later) and <c>webhook-signature</c>: <c>v1,</c> and the base64
/// HMAC-SHA256 of <c>id.timestamp.body</c> under the secret's bytes.
/// </summary>
public static class WebhookSignature
{
    private const string Prefix = "whsec_";

    public static string NewSecret() => Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));

    public static string Sign(string secret, string id, long timestamp, string body)
    {
        var key = Convert.FromBase64String(secret[Prefix.Length..]);
        return "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{id}.{timestamp}.{body}")));
    }
}
