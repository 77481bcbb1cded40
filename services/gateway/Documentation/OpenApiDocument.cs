using Microsoft.OpenApi;

namespace Platform.Gateway.Documentation;

/// <summary>
/// The OpenAPI document at /openapi/v1.json: every route of the public API with its schemas, the API-key
/// scheme, and the health endpoints (which are not route handlers, so they are added by hand).
/// </summary>
public static class OpenApiDocument
{
    public static WebApplicationBuilder AddApiDocument(this WebApplicationBuilder builder)
    {
        builder.Services.AddOpenApi(options =>
        {
            options.AddDocumentTransformer((document, context, ct) =>
            {
                document.Info = new OpenApiInfo
                {
                    Title = "Platform",
                    Version = "v1",
                    Description = "An open compute network: pin data, run catalogue kernels on contributed GPUs and CPUs, pay and earn credits.",
                };
                document.Components ??= new OpenApiComponents();
                document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
                document.Components.SecuritySchemes["apiKey"] = new OpenApiSecurityScheme
                {
                    Type = SecuritySchemeType.Http,
                    Scheme = "bearer",
                    Description = "Authorization: Bearer <api key>",
                };
                document.Paths ??= new OpenApiPaths();
                foreach (var (path, summary, ok) in new[]
                {
                    ("/health/live", "Liveness", "Healthy"),
                    ("/health/ready", "Readiness: database migrated and reachable, broker connected", "Healthy"),
                    ("/metrics", "Metrics in Prometheus' text format (docs/OBSERVABILITY.md)", "The gateway's metrics"),
                })
                {
                    document.Paths[path] = new OpenApiPathItem
                    {
                        Operations = new Dictionary<HttpMethod, OpenApiOperation>
                        {
                            [HttpMethod.Get] = new OpenApiOperation
                            {
                                Summary = summary,
                                Tags = new HashSet<OpenApiTagReference> { new("Health", document) },
                                Responses = path == "/metrics"
                                    ? new OpenApiResponses { ["200"] = new OpenApiResponse { Description = ok } }
                                    : new OpenApiResponses
                                    {
                                        ["200"] = new OpenApiResponse { Description = ok },
                                        ["503"] = new OpenApiResponse { Description = "Unhealthy" },
                                    },
                            },
                        },
                    };
                }
                return Task.CompletedTask;
            });
        });
        return builder;
    }
}
