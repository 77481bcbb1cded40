using System.Net;
using System.Net.Sockets;

namespace Platform.Rewards.Webhooks;

/// <summary>
/// Which addresses a webhook may reach: public unicast only. Loopback, private (RFC 1918, unique local), shared
/// (100.64/10), link-local (169.254/16, where clouds serve instance metadata and credentials), unspecified,
/// documentation, benchmarking, multicast and reserved addresses are the deployment's own surroundings, which an
/// account must not be able to make this service call (server-side request forgery).
/// </summary>
public static class PublicAddresses
{
    public static bool IsPublic(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
            address = address.MapToIPv4();
        if (IPAddress.IsLoopback(address))
            return false;
        var b = address.GetAddressBytes();
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            return !(b[0] is 0 or 10 or 127 or >= 224
                || b[0] == 100 && (b[1] & 0xC0) == 64
                || b[0] == 169 && b[1] == 254
                || b[0] == 172 && (b[1] & 0xF0) == 16
                || b[0] == 192 && b[1] == 168
                || b[0] == 192 && b[1] == 0 && b[2] is 0 or 2
                || b[0] == 198 && (b[1] & 0xFE) == 18
                || b[0] == 198 && b[1] == 51 && b[2] == 100
                || b[0] == 203 && b[1] == 0 && b[2] == 113);
        }
        if (address.AddressFamily != AddressFamily.InterNetworkV6)
            return false;
        if (address.Equals(IPAddress.IPv6Any) || address.IsIPv6LinkLocal || address.IsIPv6SiteLocal || address.IsIPv6Multicast)
            return false;
        // Unique local fc00::/7; documentation 2001:db8::/32.
        if ((b[0] & 0xFE) == 0xFC || b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0D && b[3] == 0xB8)
            return false;
        // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address, which must itself be public.
        if (b[0] == 0 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B && b[4..12].All(x => x == 0))
            return IsPublic(new IPAddress(b[12..16]));
        if (b[0] == 0x20 && b[1] == 0x02)
            return IsPublic(new IPAddress(b[2..6]));
        // IPv4-compatible (::a.b.c.d, deprecated) and the rest of ::/8.
        return b[0] != 0;
    }
}
