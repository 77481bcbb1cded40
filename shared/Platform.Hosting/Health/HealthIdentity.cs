using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Platform.Hosting.Health;

/// <summary>Health:* settings.</summary>
public sealed class HealthOptions
{
    public const string SectionName = "Health";

    /// <summary>
    /// An id whoever launched this process gave it (a supervisor, the test fixture), echoed by the health endpoints
    /// so the launcher knows the answer comes from this launch and not from another process on the port.
    /// </summary>
    public string? InstanceId { get; set; }
}

/// <summary>
/// The health endpoints' answer: the status as text, as before, and who answers in headers. A readiness probe that
/// only looks for a 200 would take any server that happens to hold the port for the service it started.
/// </summary>
public static class HealthIdentity
{
    /// <summary>The short service name (gateway, scheduler...).</summary>
    public const string ServiceHeader = "X-Platform-Service";

    /// <summary><see cref="HealthOptions.InstanceId"/>, when one was given.</summary>
    public const string InstanceHeader = "X-Platform-Instance";

    public static Func<HttpContext, HealthReport, Task> Writer(string service, string? instanceId) => (http, report) =>
    {
        http.Response.Headers[ServiceHeader] = service;
        if (!string.IsNullOrEmpty(instanceId))
        {
            http.Response.Headers[InstanceHeader] = instanceId;
        }

        http.Response.ContentType = "text/plain";
        return http.Response.WriteAsync(report.Status.ToString());
    };
}
