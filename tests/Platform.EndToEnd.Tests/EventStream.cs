using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Platform.EndToEnd.Tests;

public sealed record StreamedEvent(string? Id, string Type, JsonElement Data);

/// <summary>Server-sent events as a client reads them.</summary>
public static class EventStream
{
    /// <summary>Reads server-sent events from <paramref name="path"/> until the server closes the stream.</summary>
    public static async Task<List<StreamedEvent>> ReadAsync(HttpClient http, string path, string? lastEventId = null, TimeSpan? timeout = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        if (lastEventId is not null)
            request.Headers.Add("Last-Event-ID", lastEventId);
        using var deadline = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(90));
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(deadline.Token));
        var events = new List<StreamedEvent>();
        string? id = null, type = null, data = null;
        while (await reader.ReadLineAsync(deadline.Token) is { } line)
        {
            if (line.Length == 0)
            {
                if (data is not null)
                    events.Add(new StreamedEvent(id, type ?? "message", JsonDocument.Parse(data).RootElement.Clone()));
                id = type = data = null;
            }
            else if (line.StartsWith("id: ", StringComparison.Ordinal))
                id = line[4..];
            else if (line.StartsWith("event: ", StringComparison.Ordinal))
                type = line[7..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
                data = line[6..];
        }
        return events;
    }
}
