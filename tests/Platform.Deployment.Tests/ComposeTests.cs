using System.Text.RegularExpressions;
using Platform.Testing;

namespace Platform.Deployment.Tests;

/// <summary>
/// No Docker engine runs here, so compose.yaml and the Dockerfiles are checked against the solution instead:
/// every service project has a compose service and a Dockerfile that publishes that very project.
/// </summary>
public sealed partial class ComposeTests
{
    private static readonly string Root = RepoRoot.Find();
    private static readonly string[] Infrastructure = ["rabbitmq", "postgres", "prometheus", "grafana"];

    private static IReadOnlyList<string> SolutionServiceProjects() =>
        ProjectLine().Matches(File.ReadAllText(Path.Combine(Root, "Platform.sln")))
            .Select(m => m.Groups["path"].Value.Replace('\\', '/'))
            .Where(p => p.StartsWith("services/", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>Service name to its build's dockerfile (null for image-only services), read from compose.yaml.</summary>
    private static Dictionary<string, string?> ComposeServices()
    {
        var services = new Dictionary<string, string?>();
        string? current = null;
        var inServices = false;
        foreach (var line in File.ReadLines(Path.Combine(Root, "compose.yaml")))
        {
            if (TopLevelKey().Match(line) is { Success: true } top)
            {
                inServices = top.Groups[1].Value == "services";
                continue;
            }
            if (!inServices)
                continue;
            if (ServiceKey().Match(line) is { Success: true } service)
                services[current = service.Groups[1].Value] = null;
            else if (current is not null && DockerfileKey().Match(line) is { Success: true } dockerfile)
                services[current] = dockerfile.Groups[1].Value;
        }
        return services;
    }

    [Fact]
    public void Compose_has_exactly_the_infrastructure_and_one_service_per_service_project()
    {
        var expected = SolutionServiceProjects().Select(p => p.Split('/')[1]).Concat(Infrastructure).Order(StringComparer.Ordinal);

        Assert.Equal(expected, ComposeServices().Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Each_service_is_built_from_its_own_dockerfile_that_publishes_its_own_project()
    {
        var projects = SolutionServiceProjects();
        foreach (var (service, dockerfile) in ComposeServices().Where(s => !Infrastructure.Contains(s.Key)))
        {
            Assert.Equal($"services/{service}/Dockerfile", dockerfile);
            var text = File.ReadAllText(Path.Combine(Root, dockerfile!));
            var published = PublishLine().Match(text);
            Assert.True(published.Success, $"{dockerfile} has no 'dotnet publish <project>' line");
            var project = published.Groups[1].Value;
            Assert.Contains(project, projects);
            Assert.True(File.Exists(Path.Combine(Root, project)), $"{dockerfile} publishes {project}, which does not exist");

            var assembly = Path.GetFileNameWithoutExtension(project);
            Assert.Contains($"\"{assembly}.dll\"", text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Credentials_come_from_the_environment_never_from_the_file()
    {
        var compose = File.ReadAllText(Path.Combine(Root, "compose.yaml"));

        Assert.DoesNotContain("guest", compose, StringComparison.Ordinal);
        foreach (Match secret in SecretValue().Matches(compose))
            Assert.StartsWith("${", secret.Groups[2].Value, StringComparison.Ordinal);
    }

    [Fact]
    public void The_gateway_secret_reaches_the_gateway_and_the_services_behind_it_never_a_worker()
    {
        var services = ComposeYaml.Load(Path.Combine(Root, "compose.yaml")).Map("services");

        foreach (var service in new[] { "gateway", "scheduler", "rewards", "storage" })
            Assert.Equal("${PLATFORM_GATEWAY_SECRET:?set PLATFORM_GATEWAY_SECRET}", services.Map($"{service}/environment").Scalar("Platform__GatewaySecret"));
        Assert.DoesNotContain(services.Map("worker/environment").Keys, key => key.Contains("Secret", StringComparison.OrdinalIgnoreCase));
    }

    [GeneratedRegex(@"^Project\(""\{[^}]+\}""\) = ""[^""]+"", ""(?<path>[^""]+\.csproj)""", RegexOptions.Multiline)]
    private static partial Regex ProjectLine();

    [GeneratedRegex(@"^([a-z][a-z0-9_-]*):\s*$")]
    private static partial Regex TopLevelKey();

    [GeneratedRegex(@"^  ([a-z][a-z0-9_-]*):\s*$")]
    private static partial Regex ServiceKey();

    [GeneratedRegex(@"^\s+dockerfile:\s*(\S+)\s*$")]
    private static partial Regex DockerfileKey();

    [GeneratedRegex(@"RUN dotnet publish (\S+\.csproj)")]
    private static partial Regex PublishLine();

    [GeneratedRegex(@"^\s+[A-Za-z_]*(PASSWORD|PASS|AdminKey|NodeKey|KeyHashSecret|GatewaySecret):\s*(\S+)", RegexOptions.Multiline)]
    private static partial Regex SecretValue();
}
