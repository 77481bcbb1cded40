using Microsoft.Extensions.DependencyInjection;
using Platform.Hosting.Messaging;

namespace Platform.Hosting.Tests.Messaging;

public sealed class RabbitMqAddressTests
{
    [Fact]
    public void Every_part_of_a_full_uri_is_read()
    {
        var address = RabbitMqAddress.Parse("amqp://alice:s3cret@broker.example:5673/prod");

        Assert.Equal(new RabbitMqAddress("broker.example", 5673, "prod", "alice", "s3cret"), address);
    }

    [Fact]
    public void Escaped_characters_in_user_password_and_vhost_are_decoded()
    {
        var address = RabbitMqAddress.Parse("amqp://svc%40corp:p%40ss%3Aw%2Fd%25%20x@10.0.0.5:5672/team%2Fjobs%20eu");

        Assert.Equal("svc@corp", address.Username);
        Assert.Equal("p@ss:w/d% x", address.Password);
        Assert.Equal("team/jobs eu", address.VirtualHost);
        Assert.Equal("10.0.0.5", address.Host);
    }

    [Theory]
    [InlineData("amqp://guest:guest@localhost:5672/")]
    [InlineData("amqp://guest:guest@localhost:5672")]
    [InlineData("amqp://guest:guest@localhost/%2F")]
    public void Uri_without_a_vhost_or_with_an_escaped_slash_means_the_default_vhost(string uri)
    {
        Assert.Equal("/", RabbitMqAddress.Parse(uri).VirtualHost);
    }

    [Fact]
    public void Missing_port_and_credentials_default_to_5672_and_guest()
    {
        Assert.Equal(new RabbitMqAddress("localhost", 5672, "/", "guest", "guest"), RabbitMqAddress.Parse("amqp://localhost"));
    }

    [Fact]
    public void User_without_a_password_gets_an_empty_password()
    {
        var address = RabbitMqAddress.Parse("amqp://bob@localhost/dev");

        Assert.Equal(("bob", ""), (address.Username, address.Password));
    }

    [Fact]
    public void Rabbitmq_scheme_is_accepted_like_amqp()
    {
        Assert.Equal(
            RabbitMqAddress.Parse("amqp://u:p@host:1234/v"),
            RabbitMqAddress.Parse("rabbitmq://u:p@host:1234/v"));
    }

    [Theory]
    [InlineData("http://guest:guest@localhost:5672/")]
    [InlineData("localhost:5672")]
    [InlineData("broker")]
    [InlineData("not a uri")]
    [InlineData("")]
    public void Uri_that_is_not_amqp_fails_with_a_message_naming_the_setting_and_the_expected_form(string uri)
    {
        var error = Assert.Throws<InvalidOperationException>(() => RabbitMqAddress.Parse(uri));

        Assert.Contains("ConnectionStrings:RabbitMq", error.Message, StringComparison.Ordinal);
        Assert.Contains("amqp://", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("  ")]
    public void Bus_without_a_broker_uri_fails_at_registration_with_a_clear_message(string? uri)
    {
        var services = new ServiceCollection();

        var error = Assert.Throws<InvalidOperationException>(() => services.AddPlatformBus("hostingtest", uri, null));

        Assert.Contains("ConnectionStrings:RabbitMq", error.Message, StringComparison.Ordinal);
    }
}
