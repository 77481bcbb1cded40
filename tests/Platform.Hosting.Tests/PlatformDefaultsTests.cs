using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Platform.Hosting.Database;
using Platform.Hosting.Health;
using Platform.Hosting.Http;
using Platform.Testing;

namespace Platform.Hosting.Tests;

/// <summary>A web app wired with the platform defaults, on a real port, against the real broker and database.</summary>
public sealed class PlatformDefaultsTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private const string InstanceId = "healthtest-launch-1";

    private TestEnvironment _env = null!;
    private WebApplication _app = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("hosting-defaults");

        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production" });
        builder.Configuration["ConnectionStrings:RabbitMq"] = _env.RabbitMqUri;
        builder.Configuration["ConnectionStrings:Postgres"] = _env.PostgresConnectionStringFor("healthtest");
        builder.Configuration["Health:InstanceId"] = InstanceId;
        builder.AddPlatformDefaults("healthtest", typeof(PlatformDefaultsTests).Assembly);
        _app = builder.Build();
        _app.UsePlatformDefaults();
        _app.MapGet("/boom", () => ThrowUnhandled());
        _app.MapGet("/bad", () => ThrowBadRequest());
        _app.MapPost("/json", () => "ok").Accepts<string>("application/json");
        _app.MapGet("/mine", () => Problems.Create(StatusCodes.Status409Conflict, "job-finished", "Job finished", "it is done"));
        var baseUrl = $"http://127.0.0.1:{FreePort.Next()}";
        _app.Urls.Add(baseUrl);
        await _app.StartAsync();
        _http = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = Timeout };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        await _env.DisposeAsync();
    }

    [Fact]
    public async Task Liveness_is_200()
    {
        using var response = await _http.GetAsync(new Uri("/health/live", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Readiness_becomes_200_once_migrated_and_connected_to_the_broker()
    {
        await Eventually.UntilAsync(
            async () =>
            {
                using var response = await _http.GetAsync(new Uri("/health/ready", UriKind.Relative));
                return response.StatusCode;
            },
            status => status == HttpStatusCode.OK, Timeout, "/health/ready to answer 200");

        Assert.True(_app.Services.GetRequiredService<DatabaseState>().Migrated);
    }

    [Theory]
    [InlineData("/health/live")]
    [InlineData("/health/ready")]
    public async Task Health_answers_say_which_service_and_which_launch_answers(string path)
    {
        // Whoever started the process checks these before it believes a 200 on the port is this process's.
        using var response = await _http.GetAsync(new Uri(path, UriKind.Relative));

        Assert.Equal("healthtest", Assert.Single(response.Headers.GetValues(HealthIdentity.ServiceHeader)));
        Assert.Equal(InstanceId, Assert.Single(response.Headers.GetValues(HealthIdentity.InstanceHeader)));
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(await response.Content.ReadAsStringAsync(), new[] { "Healthy", "Unhealthy", "Degraded" });
    }

    [Fact]
    public async Task Unknown_path_is_a_404_problem()
    {
        using var response = await _http.GetAsync(new Uri("/no/such/thing", UriKind.Relative));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(404, problem.RootElement.GetProperty("status").GetInt32());
        Assert.Equal("urn:platform:problem:not-found", problem.RootElement.GetProperty("type").GetString());
    }

    /// <summary>The framework's own refusals carry our problem types, as every answer of ours does; ours pass unchanged.</summary>
    [Theory]
    [InlineData("DELETE", "/json", null, HttpStatusCode.MethodNotAllowed, "method-not-allowed")]
    [InlineData("POST", "/json", "text/plain", HttpStatusCode.UnsupportedMediaType, "unsupported-media-type")]
    [InlineData("GET", "/bad", null, HttpStatusCode.RequestEntityTooLarge, "payload-too-large")]
    [InlineData("GET", "/boom", null, HttpStatusCode.InternalServerError, "internal-error")]
    [InlineData("GET", "/mine", null, HttpStatusCode.Conflict, "job-finished")]
    public async Task Framework_answers_are_problems_of_our_types(string method, string path, string? contentType, HttpStatusCode status, string slug)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(path, UriKind.Relative));
        if (contentType is not null)
            request.Content = new StringContent("x", System.Text.Encoding.UTF8, contentType);

        using var response = await _http.SendAsync(request);

        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal($"urn:platform:problem:{slug}", problem.RootElement.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(problem.RootElement.GetProperty("detail").GetString()));
    }

    [Fact]
    public async Task Unhandled_exception_is_a_500_problem_without_the_exception_text()
    {
        using var response = await _http.GetAsync(new Uri("/boom", UriKind.Relative));

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var body = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("secret detail", body, StringComparison.Ordinal);
        Assert.DoesNotContain(nameof(ThrowUnhandled), body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bad_request_thrown_before_a_handler_runs_keeps_its_status()
    {
        using var response = await _http.GetAsync(new Uri("/bad", UriKind.Relative));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    private static string ThrowUnhandled() => throw new InvalidOperationException("secret detail");

    private static string ThrowBadRequest() => throw new BadHttpRequestException("too large", StatusCodes.Status413PayloadTooLarge);
}
