using System.Net;
using System.Net.Sockets;
using Platform.Rewards.Webhooks;

namespace Platform.Rewards.Tests.Webhooks;

/// <summary>Which addresses a webhook may reach, and the check where the connection is made.</summary>
public sealed class WebhookAddressTests
{
    [Theory]
    [InlineData("93.184.215.14", true)]
    [InlineData("8.8.8.8", true)]
    [InlineData("2606:4700:4700::1111", true)]
    [InlineData("127.0.0.1", false)]
    [InlineData("127.8.9.10", false)]
    [InlineData("0.0.0.0", false)]
    [InlineData("10.1.2.3", false)]
    [InlineData("172.16.0.1", false)]
    [InlineData("172.31.255.255", false)]
    [InlineData("192.168.1.1", false)]
    [InlineData("169.254.169.254", false)]
    [InlineData("100.64.0.1", false)]
    [InlineData("224.0.0.1", false)]
    [InlineData("255.255.255.255", false)]
    [InlineData("198.18.0.1", false)]
    [InlineData("::1", false)]
    [InlineData("::", false)]
    [InlineData("fe80::1", false)]
    [InlineData("fd00::1", false)]
    [InlineData("ff02::1", false)]
    [InlineData("::ffff:127.0.0.1", false)]
    [InlineData("::ffff:169.254.169.254", false)]
    [InlineData("::ffff:93.184.215.14", true)]
    [InlineData("64:ff9b::a9fe:a9fe", false)]
    [InlineData("2002:c0a8:0101::1", false)]
    [InlineData("2001:db8::1", false)]
    public void Only_public_unicast_addresses_are_reachable(string address, bool isPublic) =>
        Assert.Equal(isPublic, PublicAddresses.IsPublic(IPAddress.Parse(address)));

    [Fact]
    public async Task A_name_that_resolves_inside_is_refused_where_the_connection_is_made_and_nothing_connects()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var http = new HttpClient(WebhookHttp.CreateHandler(new WebhookOptions())) { Timeout = TimeSpan.FromSeconds(10) };

        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => http.PostAsync($"http://localhost:{port}/hook", new StringContent("{}")));

        Assert.IsType<WebhookAddressRefusedException>(refused.InnerException);
        Assert.False(listener.Pending(), "a connection reached the listener");
        // The same handler with private addresses allowed does connect: the refusal was the address check's.
        using var allowed = new HttpClient(WebhookHttp.CreateHandler(new WebhookOptions { AllowPrivateAddresses = true, Timeout = TimeSpan.FromSeconds(2) }));
        var connecting = allowed.PostAsync($"http://localhost:{port}/hook", new StringContent("{}"));
        using var accepted = await listener.AcceptTcpClientAsync().WaitAsync(TimeSpan.FromSeconds(10));
        accepted.Close();
        await Assert.ThrowsAnyAsync<Exception>(() => connecting);
    }

    [Fact]
    public void Retries_wait_twice_as_long_each_time_up_to_the_most()
    {
        var options = new WebhookOptions { FirstRetryAfter = TimeSpan.FromSeconds(5), MaxRetryDelay = TimeSpan.FromMinutes(1) };

        Assert.Equal([5, 10, 20, 40, 60, 60], Enumerable.Range(1, 6).Select(n => options.RetryDelayAfter(n).TotalSeconds));
        Assert.Equal(TimeSpan.FromMinutes(1), options.RetryDelayAfter(1000));
    }
}
