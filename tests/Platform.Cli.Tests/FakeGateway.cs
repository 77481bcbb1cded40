using System.Net;
using System.Text;

namespace Platform.Cli.Tests;

/// <summary>An HttpMessageHandler that answers from a function and records every request, for SDK tests without a network.</summary>
public sealed class FakeGateway(Func<HttpRequestMessage, HttpResponseMessage> answer) : HttpMessageHandler
{
    public List<HttpRequestMessage> Requests { get; } = [];

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        Requests.Add(request);
        return Task.FromResult(answer(request));
    }

    public static HttpResponseMessage Bytes(byte[] body) => new(HttpStatusCode.OK) { Content = new ByteArrayContent(body) };

    public static HttpResponseMessage Text(HttpStatusCode status, string body, string mediaType) =>
        new(status) { Content = new StringContent(body, Encoding.UTF8, mediaType) };

    public static HttpResponseMessage Json(string body) => Text(HttpStatusCode.OK, body, "application/json");

    public Platform.Client.PlatformClient Client() =>
        new(new HttpClient(this) { BaseAddress = new Uri("http://gateway.test/") }, "pk_test") { PollInterval = TimeSpan.FromMilliseconds(1) };
}
