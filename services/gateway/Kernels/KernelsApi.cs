using Platform.Contracts.Api;
using Platform.Contracts.Kernels;

namespace Platform.Gateway.Kernels;

/// <summary>
/// GET /v1/kernels: the catalogue the workers run (Platform.Contracts.Kernels.KernelCatalog), so the dashboard, the
/// command line and any client read it from the network instead of keeping a copy. Public, like the network view.
/// </summary>
public static class KernelsApi
{
    public static IReadOnlyList<KernelView> Catalogue { get; } = [.. KernelCatalog.Definitions.Select(d => new KernelView(d.Name, d.Description, d.Version,
        d.Inputs, [.. d.Parameters.Select(p => new KernelParameterView(p.Name, p.Description,
            p.Choices is not null ? "choice" : p.Integer ? "integer" : "number", p.Default,
            p.Choices is null ? p.Min : null, p.Choices is null ? p.Max : null, p.Choices))],
        d.Outputs, d.Shapes))];

    public static IEndpointRouteBuilder MapKernels(this IEndpointRouteBuilder app)
    {
        // The catalogue changes only with a release: clients may keep it for a while.
        app.MapGet("/v1/kernels", (HttpContext http) =>
        {
            http.Response.Headers.CacheControl = "public, max-age=300";
            return TypedResults.Ok(Catalogue);
        }).WithTags("Kernels").AllowAnonymous().Produces<IReadOnlyList<KernelView>>();
        return app;
    }
}
