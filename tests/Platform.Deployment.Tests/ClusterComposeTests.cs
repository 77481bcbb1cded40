using System.Text.RegularExpressions;
using Platform.Testing;

namespace Platform.Deployment.Tests;

/// <summary>
/// compose.cluster.yaml, the network laid out as it scales (docs/SCALING.md), checked without Docker: a
/// RabbitMQ cluster of three with quorum queues, Postgres with a synchronous standby, MinIO under three S3-backed storage nodes, two schedulers,
/// a gateway over all of them, and credentials only from the environment.
/// </summary>
public sealed partial class ClusterComposeTests
{
    private static readonly string Root = RepoRoot.Find();
    private static readonly Dictionary<string, object> Compose = ComposeYaml.Load(Path.Combine(Root, "compose.cluster.yaml"));
    private static readonly string[] ServiceProjects = ["gateway", "rewards", "scheduler", "storage", "worker"];

    private static Dictionary<string, Dictionary<string, object>> Services() =>
        Compose.Map("services").ToDictionary(s => s.Key, s => (Dictionary<string, object>)s.Value);

    /// <summary>Services built from one of the platform's Dockerfiles, with the project each is built from.</summary>
    private static Dictionary<string, string> Built() =>
        Services()
            .Where(s => s.Value.Map("build").Scalar("dockerfile") is not null)
            .ToDictionary(s => s.Key, s => s.Value.Map("build").Scalar("dockerfile")!.Split('/')[1]);

    private static Dictionary<string, object> Env(string service) => Services()[service].Map("environment");

    private static List<string> NamesOf(string project) =>
        Built().Where(b => b.Value == project).Select(b => b.Key).Order(StringComparer.Ordinal).ToList();

    [Fact]
    public void Every_service_project_runs_built_from_its_own_dockerfile()
    {
        foreach (var (service, dockerfile) in Services().Where(s => s.Value.Map("build").Count > 0).Select(s => (s.Key, s.Value.Map("build").Scalar("dockerfile"))))
        {
            var project = ServiceName().Match(service).Groups["project"].Value;
            Assert.Equal($"services/{project}/Dockerfile", dockerfile);
            Assert.True(File.Exists(Path.Combine(Root, dockerfile!)), $"{service}: {dockerfile} does not exist");
        }
        Assert.Equal(ServiceProjects, Built().Values.Distinct().Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Three_rabbitmq_nodes_form_one_cluster_with_a_shared_cookie()
    {
        var nodes = Services().Where(s => s.Value.Scalar("image")?.StartsWith("rabbitmq:", StringComparison.Ordinal) == true).ToList();

        Assert.Equal(3, nodes.Count);
        var config = Compose.Map("configs/rabbitmq-cluster").Scalar("content")!;
        Assert.Contains("cluster_formation.peer_discovery_backend = classic_config", config, StringComparison.Ordinal);
        foreach (var (name, node) in nodes)
        {
            Assert.Equal(name, node.Scalar("hostname"));
            Assert.Contains($"= rabbit@{name}\n", config, StringComparison.Ordinal);
            Assert.Equal("${RABBITMQ_ERLANG_COOKIE:?set RABBITMQ_ERLANG_COOKIE}", node.Map("environment").Scalar("RABBITMQ_ERLANG_COOKIE"));
            var mounted = Assert.IsType<List<object>>(node["configs"]).Cast<Dictionary<string, object>>().ToList();
            var mount = Assert.Single(mounted, m => m.Scalar("source") == "rabbitmq-cluster");
            Assert.StartsWith("/etc/rabbitmq/conf.d/", mount.Scalar("target"), StringComparison.Ordinal);
            // The shovel plugin, for ./platform dlq replay.
            var plugins = Assert.Single(mounted, m => m.Scalar("source") == "rabbitmq-plugins");
            Assert.Equal("/etc/rabbitmq/enabled_plugins", plugins.Scalar("target"));
        }
        Assert.Contains("rabbitmq_shovel,", Compose.Map("configs/rabbitmq-plugins").Scalar("content")!, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_service_uses_quorum_queues_and_knows_every_node_of_the_cluster()
    {
        var nodes = Services().Keys.Where(k => k.StartsWith("rabbitmq-", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        foreach (var service in Built().Keys)
        {
            var env = Env(service);
            // Nodes get their broker login, every node's address and the kind of queue by enrolling, never from compose.
            if (Built()[service] == "worker")
            {
                Assert.DoesNotContain(env.Keys, key => key.StartsWith("RabbitMq__", StringComparison.Ordinal) || key.StartsWith("ConnectionStrings__", StringComparison.Ordinal));
                continue;
            }
            Assert.True(env.Scalar("RabbitMq__QuorumQueues") == "true", $"{service} does not set RabbitMq__QuorumQueues: \"true\"");
            var hosts = env.Scalar("ConnectionStrings__RabbitMq")!.Split(',').Select(uri => BrokerHost().Match(uri)).ToList();
            Assert.True(hosts.All(h => h.Success), $"{service}: ConnectionStrings__RabbitMq is not a list of amqp:// URIs");
            Assert.Equal(nodes, hosts.Select(h => h.Groups["host"].Value));
        }
    }

    [Fact]
    public void Postgres_is_a_primary_with_a_synchronous_standby_and_every_service_names_both()
    {
        var servers = Services().Where(s => s.Value.Scalar("image")?.StartsWith("postgres:", StringComparison.Ordinal) == true).Select(s => s.Key).Order(StringComparer.Ordinal).ToList();

        Assert.Equal(["postgres-1", "postgres-2"], servers);
        // The primary waits for the standby by name on every commit, and lets it replicate.
        var primary = Compose.Map("configs/postgres-replication").Scalar("content")!;
        Assert.Contains("host replication platform all", primary, StringComparison.Ordinal);
        // Through ALTER SYSTEM in the init script, for the real start: on the command line it would also hold the image's
        // setup server, whose commits would wait for a standby that cannot connect to it.
        Assert.Contains("alter system set synchronous_standby_names = 'standby'", primary, StringComparison.Ordinal);
        Assert.DoesNotContain("command", Services()["postgres-1"].Keys);
        var standby = Compose.Map("configs/postgres-standby").Scalar("content")!;
        Assert.Contains("pg_basebackup -h postgres-1", standby, StringComparison.Ordinal);
        Assert.Contains("application_name=standby", standby, StringComparison.Ordinal);
        foreach (var service in Built().Keys.Where(s => Built()[s] != "worker"))
        {
            var postgres = Env(service).Scalar("ConnectionStrings__Postgres")!;
            Assert.StartsWith("Host=postgres-1,postgres-2;Target Session Attributes=primary;", postgres, StringComparison.Ordinal);
            Assert.Contains("postgres-2", Services()[service].Map("depends_on").Keys);
        }
    }

    [Fact]
    public void Two_schedulers_behind_the_gateway()
    {
        var schedulers = NamesOf("scheduler");

        Assert.Equal(2, schedulers.Count);
        Assert.Equal(schedulers.Select(s => $"http://{s}:8080"), Env("gateway").Scalar("Upstreams__Scheduler")!.Split(','));
    }

    [Fact]
    public void Three_storage_nodes_on_s3_with_distinct_ids_all_listed_by_the_gateway()
    {
        var nodes = NamesOf("storage");

        Assert.Equal(3, nodes.Count);
        Assert.Equal(3, nodes.Select(n => Env(n).Scalar("Storage__NodeId")).Distinct().Count());
        var minio = Services().Where(s => s.Value.Scalar("image")?.StartsWith("minio/", StringComparison.Ordinal) == true).Select(s => s.Key).Single();
        foreach (var node in nodes)
        {
            var env = Env(node);
            Assert.Equal(node, env.Scalar("Storage__NodeId"));
            Assert.Equal($"http://{node}:8080", env.Scalar("Storage__AdvertisedUrl"));
            Assert.Equal("s3", env.Scalar("Storage__Backend"));
            Assert.Equal(minio, new Uri(env.Scalar("Storage__S3__ServiceUrl")!).Host);
            Assert.Matches("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", env.Scalar("Storage__S3__Bucket")!);
            Assert.InRange(int.Parse(env.Scalar("Storage__ReplicaCount")!, System.Globalization.CultureInfo.InvariantCulture), 2, nodes.Count);
            Assert.Contains(minio, Services()[node].Map("depends_on").Keys);
        }
        Assert.Equal(nodes.Select(n => $"http://{n}:8080"), Env("gateway").Scalar("Upstreams__Storage")!.Split(','));
    }

    [Fact]
    public void Workers_scale_and_reach_the_gateway()
    {
        var worker = Assert.Single(NamesOf("worker"));

        Assert.Equal("http://gateway:8080", Env(worker).Scalar("Worker__GatewayUrl"));
        Assert.DoesNotContain("container_name", Services()[worker].Keys);
    }

    [Fact]
    public void The_gateway_secret_reaches_the_gateway_and_the_services_behind_it_never_a_worker()
    {
        var behind = NamesOf("gateway").Concat(NamesOf("scheduler")).Concat(NamesOf("rewards")).Concat(NamesOf("storage")).ToList();

        Assert.Equal(7, behind.Count);
        foreach (var service in behind)
            Assert.Equal("${PLATFORM_GATEWAY_SECRET:?set PLATFORM_GATEWAY_SECRET}", Env(service).Scalar("Platform__GatewaySecret"));
        Assert.DoesNotContain(Env(Assert.Single(NamesOf("worker"))).Keys, key => key.Contains("Secret", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void Credentials_come_from_the_environment_never_from_the_file()
    {
        var text = File.ReadAllText(Path.Combine(Root, "compose.cluster.yaml"));
        Assert.DoesNotContain("guest", text, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("minioadmin", text, StringComparison.OrdinalIgnoreCase);

        var secrets = 0;
        foreach (var (service, definition) in Services())
        {
            foreach (var (key, value) in definition.Map("environment"))
            {
                var setting = (string)value;
                if (SecretKey().IsMatch(key))
                {
                    secrets++;
                    // Required (${VAR:?...}); only the worker's node key may be empty until an operator has made one.
                    var pattern = key.EndsWith("NodeKey", StringComparison.Ordinal) ? RequiredOrEmpty() : Required();
                    Assert.True(pattern.IsMatch(setting), $"{service}: {key} is '{setting}', not a required ${{VARIABLE}}");
                }
                foreach (Match embedded in EmbeddedPassword().Matches(setting))
                    Assert.True(embedded.Groups["value"].Value.StartsWith("${", StringComparison.Ordinal), $"{service}: {key} embeds a password that is not ${{...}}");
            }
        }
        Assert.True(secrets >= 10, $"only {secrets} secret settings found: the parser missed some");
    }

    [GeneratedRegex(@"^amqp://[^@]+@(?<host>[^:/]+)(:\d+)?/")]
    private static partial Regex BrokerHost();

    [GeneratedRegex(@"^(?<project>[a-z]+)(-\d+)?$")]
    private static partial Regex ServiceName();

    [GeneratedRegex(@"(PASSWORD|_PASS|AdminKey|NodeKey|COOKIE|SecretKey|AccessKey|ROOT_USER|Secret)$")]
    private static partial Regex SecretKey();

    [GeneratedRegex(@"^\$\{[A-Z0-9_]+:\?[^}]+\}$")]
    private static partial Regex Required();

    [GeneratedRegex(@"^\$\{[A-Z0-9_]+(:\?[^}]+|:-)\}$")]
    private static partial Regex RequiredOrEmpty();

    [GeneratedRegex(@"Password=(?<value>[^;]*)|//[^:/@]+:(?<value>[^@/]*)@")]
    private static partial Regex EmbeddedPassword();
}
