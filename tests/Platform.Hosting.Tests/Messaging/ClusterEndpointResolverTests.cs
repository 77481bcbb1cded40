using Platform.Hosting.Messaging;

namespace Platform.Hosting.Tests.Messaging;

public sealed class ClusterEndpointResolverTests
{
    private static readonly string[] Nodes = ["rabbit-1:5672", "rabbit-2:5673", "rabbit-3:5674"];

    [Fact]
    public void Every_attempt_offers_every_node_so_one_dead_node_never_ends_an_attempt()
    {
        var resolver = new ClusterEndpointResolver(Nodes);

        for (var attempt = 0; attempt < 5; attempt++)
        {
            var offered = resolver.All().Select(e => $"{e.HostName}:{e.Port}").ToList();
            Assert.Equal(Nodes.Order(), offered.Order());
        }
    }

    [Fact]
    public void The_first_attempt_starts_with_the_first_node_and_a_reconnect_after_the_node_it_was_connected_to()
    {
        var resolver = new ClusterEndpointResolver(Nodes);

        // The first attempt: node 1 refuses, node 2 answers (the client stops taking endpoints there).
        Assert.Equal(["rabbit-1", "rabbit-2"], resolver.All().Take(2).Select(e => e.HostName));
        // Node 2 goes: the reconnect starts with node 3 and tries node 2 last.
        Assert.Equal(["rabbit-3", "rabbit-1", "rabbit-2"], resolver.All().Select(e => e.HostName));
    }
}
