using Microsoft.Extensions.Options;
using Platform.Gateway.Auth;

namespace Platform.Gateway.Forwarding;

public static class ForwardedRoutes
{
    public static WebApplicationBuilder AddForwarding(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<UpstreamOptions>().BindConfiguration(UpstreamOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddHttpClient<IForwarder, HttpForwarder>(http => http.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false, AutomaticDecompression = System.Net.DecompressionMethods.None });
        builder.Services.AddSingleton<Upstreams>();
        builder.Services.AddHttpClient<StorageClient>();
        return builder;
    }

    public static IEndpointRouteBuilder MapForwardedRoutes(this IEndpointRouteBuilder app)
    {
        var blobs = app.MapGroup("/v1/blobs").WithTags("Blobs").RequireAuthorization("any");
        // Blob size is storage's to limit (it answers 413); the gateway only streams.
        blobs.MapPost("/", (HttpContext http, IForwarder forwarder, Upstreams upstreams) =>
            forwarder.ForwardAsync(http, upstreams.Storage, "/v1/blobs", http.User.AccountOf(), http.RequestServices.GetRequiredService<IOptions<UpstreamOptions>>().Value.UploadTimeout))
            .WithMetadata(new Microsoft.AspNetCore.Mvc.DisableRequestSizeLimitAttribute());
        blobs.MapMethods("/{cid}", [HttpMethods.Get, HttpMethods.Head, HttpMethods.Delete], (string cid, HttpContext http, IForwarder forwarder, Upstreams upstreams) =>
            forwarder.ForwardAsync(http, upstreams.Storage, $"/v1/blobs/{Uri.EscapeDataString(cid)}", http.User.AccountOf()));
        blobs.MapGet("/{cid}/pin", (string cid, HttpContext http, IForwarder forwarder, Upstreams upstreams) =>
            forwarder.ForwardAsync(http, upstreams.Storage, $"/v1/blobs/{Uri.EscapeDataString(cid)}/pin", http.User.AccountOf()));
        blobs.MapGet("/{cid}/proof", (string cid, HttpContext http, IForwarder forwarder, Upstreams upstreams) =>
            forwarder.ForwardAsync(http, upstreams.Storage, $"/v1/blobs/{Uri.EscapeDataString(cid)}/proof", http.User.AccountOf()));

        var datasets = app.MapGroup("/v1/datasets").WithTags("Datasets").RequireAuthorization("any");
        datasets.MapPost("/", (HttpContext http, IForwarder forwarder, Upstreams upstreams) =>
            forwarder.ForwardAsync(http, upstreams.Storage, "/v1/datasets", http.User.AccountOf()));
        datasets.MapGet("/{cid}", (string cid, HttpContext http, IForwarder forwarder, Upstreams upstreams) =>
            forwarder.ForwardAsync(http, upstreams.Storage, $"/v1/datasets/{Uri.EscapeDataString(cid)}", http.User.AccountOf()));

        // The account's views and stake changes are the rewards service's; the query string (ledger paging) and
        // the Idempotency-Key header travel with the request. Rewards checks the role where it matters (only
        // operators stake or have earnings) from its own record of the account.
        var account = app.MapGroup("/v1/account").WithTags("Account").RequireAuthorization("any");
        account.MapGet("/", (HttpContext http, IForwarder forwarder, Upstreams upstreams) =>
            forwarder.ForwardAsync(http, upstreams.Rewards, "/v1/account", http.User.AccountOf()));
        account.MapGet("/ledger", (HttpContext http, IForwarder forwarder, Upstreams upstreams) =>
            forwarder.ForwardAsync(http, upstreams.Rewards, "/v1/account/ledger", http.User.AccountOf()));
        account.MapGet("/earnings", (HttpContext http, IForwarder forwarder, Upstreams upstreams) =>
            forwarder.ForwardAsync(http, upstreams.Rewards, "/v1/account/earnings", http.User.AccountOf()));
        account.MapPost("/stake", (HttpContext http, IForwarder forwarder, Upstreams upstreams) =>
            forwarder.ForwardAsync(http, upstreams.Rewards, "/v1/account/stake", http.User.AccountOf()));
        account.MapPost("/unstake", (HttpContext http, IForwarder forwarder, Upstreams upstreams) =>
            forwarder.ForwardAsync(http, upstreams.Rewards, "/v1/account/unstake", http.User.AccountOf()));

        // The network view is public: anyone deciding whether to use or join the network may look.
        app.MapGet("/v1/workers", (HttpContext http, IForwarder forwarder, Upstreams upstreams) =>
            forwarder.ForwardAsync(http, upstreams.Scheduler, "/v1/workers", "")).WithTags("Network").AllowAnonymous();
        app.MapGet("/v1/network", (HttpContext http, IForwarder forwarder, Upstreams upstreams) =>
            forwarder.ForwardAsync(http, upstreams.Scheduler, "/v1/network", "")).WithTags("Network").AllowAnonymous();
        return app;
    }
}
