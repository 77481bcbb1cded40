using System.Net.Sockets;
using System.Text;

namespace Platform.EndToEnd.Tests;

/// <summary>
/// Sends bytes no HTTP client library would send (CR, LF or NUL inside a header, contradictory framing) and reads
/// back the status, the content type and the body. The connection is the server's to close; a deadline stops the
/// read when it does not.
/// </summary>
public static class RawHttp
{
    public static async Task<(int Status, string? ContentType, string Body)> SendAsync(Uri server, byte[] request, TimeSpan deadline)
    {
        using var timeout = new CancellationTokenSource(deadline);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(server.Host, server.Port, timeout.Token);
        var stream = tcp.GetStream();
        try
        {
            await stream.WriteAsync(request, timeout.Token);
            await stream.FlushAsync(timeout.Token);
        }
        catch (IOException)
        {
            // The server may answer and close before it has read everything sent (a 413 or 431 does).
        }

        var received = new MemoryStream();
        var buffer = new byte[16 * 1024];
        try
        {
            while (!Complete(received))
            {
                var n = await stream.ReadAsync(buffer, timeout.Token);
                if (n == 0)
                    break;
                received.Write(buffer, 0, n);
            }
        }
        catch (IOException) when (received.Length > 0)
        {
            // Reset after the response was written.
        }

        var text = Encoding.Latin1.GetString(received.ToArray());
        var headerEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        Assert.True(headerEnd > 0, $"no HTTP response: '{(text.Length > 200 ? text[..200] : text)}'");
        var lines = text[..headerEnd].Split("\r\n");
        var status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var contentType = lines.Skip(1).Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Equals("Content-Type", StringComparison.OrdinalIgnoreCase))
            .Select(p => p[1].Trim().Split(';')[0]).FirstOrDefault();
        var body = text[(headerEnd + 4)..];
        if (lines.Any(l => l.StartsWith("Transfer-Encoding:", StringComparison.OrdinalIgnoreCase) && l.Contains("chunked", StringComparison.OrdinalIgnoreCase)))
            body = Dechunk(body);
        return (status, contentType, Encoding.UTF8.GetString(Encoding.Latin1.GetBytes(body)));
    }

    // One response is enough: stop when its headers and the body they announce are in.
    private static bool Complete(MemoryStream received)
    {
        var text = Encoding.Latin1.GetString(received.GetBuffer(), 0, (int)received.Length);
        var headerEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (headerEnd < 0)
            return false;
        var headers = text[..headerEnd].Split("\r\n");
        var body = text.Length - headerEnd - 4;
        var length = headers.Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            .Select(p => long.Parse(p[1].Trim(), System.Globalization.CultureInfo.InvariantCulture)).Cast<long?>().FirstOrDefault();
        if (length is { } n)
            return body >= n;
        if (headers.Any(l => l.StartsWith("Transfer-Encoding:", StringComparison.OrdinalIgnoreCase)))
            return text.EndsWith("0\r\n\r\n", StringComparison.Ordinal);
        return false; // read to the close
    }

    private static string Dechunk(string chunked)
    {
        var result = new StringBuilder();
        var at = 0;
        while (at < chunked.Length)
        {
            var lineEnd = chunked.IndexOf("\r\n", at, StringComparison.Ordinal);
            if (lineEnd < 0)
                break;
            var size = Convert.ToInt32(chunked[at..lineEnd].Split(';')[0], 16);
            if (size == 0)
                break;
            result.Append(chunked, lineEnd + 2, size);
            at = lineEnd + 2 + size + 2;
        }
        return result.ToString();
    }
}
