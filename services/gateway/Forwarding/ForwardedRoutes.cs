using Microsoft.Extensions.Options;
using Platform.Contracts.Api;
using Platform.Gateway.Auth;
using Platform.Hosting.Http;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;

namespace Platform.Gateway.Forwarding;

public static class ForwardedRoutes
{
    public static WebApplicationBuilder AddForwarding(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<UpstreamOptions>().BindConfiguration(UpstreamOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        // Every request forwarded for an account is signed; the gateway does not start without Platform:GatewaySecret.
        builder.Services.AddGatewayProof();
        // YARP: clusters from Upstreams:* (no YARP routes), its forwarder, health checks and load balancing.
        builder.Services.AddReverseProxy();
        // YARP logs every forwarded request and every health probe at Information; failures are warnings (its and ours).
        builder.Logging.AddFilter("Yarp", LogLevel.Warning);
        builder.Services.AddSingleton<IProxyConfigProvider, UpstreamClusters>();
        builder.Services.AddSingleton<IPassiveHealthCheckPolicy, UpstreamFailurePolicy>();
        builder.Services.AddSingleton<UpstreamForwarder>();
        builder.Services.AddHttpClient<StorageClient>();
        return builder;
    }

    /// <summary>Loads YARP's clusters and starts their health checks; adds no endpoint (there are no YARP routes).</summary>
    public static IEndpointRouteBuilder MapUpstreamClusters(this IEndpointRouteBuilder app)
    {
        app.MapReverseProxy();
        return app;
    }

    public static IEndpointRouteBuilder MapForwardedRoutes(this IEndpointRouteBuilder app)
    {
        app.MapUpstreamClusters();
        // Fetching and pinning blobs is also a node's work: its node key may do that (and enroll), nothing else here.
        var blobs = app.MapGroup("/v1/blobs").WithTags("Blobs");
        // Blob size is storage's to limit (it answers 413); the gateway only streams.
        blobs.MapPost("/", (HttpContext http, UpstreamForwarder forwarder, IOptions<UpstreamOptions> upload) =>
            forwarder.ForwardAsync(http, Upstream.Storage, "/v1/blobs", http.User.AccountOf(), upload.Value.UploadTimeout))
            .WithMetadata(new Microsoft.AspNetCore.Mvc.DisableRequestSizeLimitAttribute())
            // Any body is taken as bytes, whatever its content type: curl --data-binary sends a form's by default.
            .Accepts<Stream>("application/octet-stream", "*/*").Produces<PinResponse>(StatusCodes.Status201Created)
            .Problems(StatusCodes.Status402PaymentRequired, StatusCodes.Status408RequestTimeout, StatusCodes.Status413PayloadTooLarge)
            .RequireAuthorization(Roles.BlobIo);
        blobs.MapMethods("/{cid}", [HttpMethods.Get, HttpMethods.Head], (string cid, HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Storage, $"/v1/blobs/{Uri.EscapeDataString(cid)}", http.User.AccountOf()))
            .Produces<Stream>(StatusCodes.Status200OK, "application/octet-stream").Produces(StatusCodes.Status206PartialContent)
            .Problems(StatusCodes.Status404NotFound, StatusCodes.Status416RangeNotSatisfiable)
            .RequireAuthorization(Roles.BlobIo);
        blobs.MapDelete("/{cid}", (string cid, HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Storage, $"/v1/blobs/{Uri.EscapeDataString(cid)}", http.User.AccountOf()))
            .Problems(StatusCodes.Status404NotFound, StatusCodes.Status405MethodNotAllowed)
            .RequireAuthorization("any");
        blobs.MapGet("/{cid}/pin", (string cid, HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Storage, $"/v1/blobs/{Uri.EscapeDataString(cid)}/pin", http.User.AccountOf()))
            .Produces<PinStatusResponse>().Problems(StatusCodes.Status404NotFound).RequireAuthorization("any");
        blobs.MapGet("/{cid}/proof", (string cid, HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Storage, $"/v1/blobs/{Uri.EscapeDataString(cid)}/proof", http.User.AccountOf()))
            .Produces<ProofResponse>().Problems(StatusCodes.Status404NotFound).RequireAuthorization("any");

        var datasets = app.MapGroup("/v1/datasets").WithTags("Datasets").RequireAuthorization("any");
        datasets.MapPost("/", (HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Storage, "/v1/datasets", http.User.AccountOf()))
            .Accepts<CreateDatasetRequest>("application/json").Produces<DatasetView>(StatusCodes.Status201Created).Problems(StatusCodes.Status422UnprocessableEntity);
        datasets.MapGet("/{cid}", (string cid, HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Storage, $"/v1/datasets/{Uri.EscapeDataString(cid)}", http.User.AccountOf()))
            .Produces<DatasetView>().Problems(StatusCodes.Status404NotFound);

        // The account's views and stake changes are the rewards service's; the query string (ledger paging) and
        // the Idempotency-Key header travel with the request. Only operators stake or have earnings: the gateway
        // refuses other roles (403) before forwarding, and rewards checks again from its own record of the account.
        var account = app.MapGroup("/v1/account").WithTags("Account").RequireAuthorization("any");
        account.MapGet("/", (HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Rewards, "/v1/account", http.User.AccountOf()))
            .Produces<AccountResponse>().Problems(StatusCodes.Status404NotFound);
        account.MapGet("/ledger", (HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Rewards, "/v1/account/ledger", http.User.AccountOf()))
            .Produces<LedgerPage>().Problems();
        account.MapGet("/earnings", (HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Rewards, "/v1/account/earnings", http.User.AccountOf()))
            .Produces<EarningsResponse>().Problems(StatusCodes.Status403Forbidden)
            .RequireAuthorization(Roles.Operator);
        account.MapGet("/spending", (HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Rewards, "/v1/account/spending", http.User.AccountOf()))
            .Produces<SpendingResponse>().Problems(StatusCodes.Status403Forbidden)
            .RequireAuthorization(Roles.Client);
        account.MapPost("/stake", (HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Rewards, "/v1/account/stake", http.User.AccountOf()))
            .Accepts<StakeRequest>("application/json").Produces<StakeResponse>()
            .Problems(StatusCodes.Status402PaymentRequired, StatusCodes.Status403Forbidden, StatusCodes.Status409Conflict)
            .RequireAuthorization(Roles.Operator);
        // Only those who pay for jobs (clients, and admins who may submit) set a low-balance warning.
        account.MapPut("/low-balance", (HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Rewards, "/v1/account/low-balance", http.User.AccountOf()))
            .Accepts<LowBalanceRequest>("application/json").Produces<AccountResponse>()
            .Problems(StatusCodes.Status403Forbidden, StatusCodes.Status404NotFound)
            .RequireAuthorization(Roles.Client);
        // The webhook that carries the low-balance warning: the same accounts as the threshold.
        account.MapGet("/webhook", (HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Rewards, "/v1/account/webhook", http.User.AccountOf()))
            .Produces<WebhookView>().Problems(StatusCodes.Status403Forbidden, StatusCodes.Status404NotFound)
            .RequireAuthorization(Roles.Client);
        account.MapPut("/webhook", (HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Rewards, "/v1/account/webhook", http.User.AccountOf()))
            .Accepts<WebhookRequest>("application/json").Produces<WebhookView>()
            .Problems(StatusCodes.Status403Forbidden, StatusCodes.Status404NotFound)
            .RequireAuthorization(Roles.Client);
        account.MapDelete("/webhook", (HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Rewards, "/v1/account/webhook", http.User.AccountOf()))
            .Produces(StatusCodes.Status204NoContent).Problems(StatusCodes.Status403Forbidden, StatusCodes.Status404NotFound)
            .RequireAuthorization(Roles.Client);
        account.MapPost("/webhook/test", (HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Rewards, "/v1/account/webhook/test", http.User.AccountOf()))
            .Produces<WebhookDelivery>(StatusCodes.Status202Accepted).Problems(StatusCodes.Status403Forbidden, StatusCodes.Status404NotFound)
            .RequireAuthorization(Roles.Client);
        account.MapPost("/unstake", (HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Rewards, "/v1/account/unstake", http.User.AccountOf()))
            .Accepts<StakeRequest>("application/json").Produces<StakeResponse>()
            .Problems(StatusCodes.Status403Forbidden, StatusCodes.Status409Conflict)
            .RequireAuthorization(Roles.Operator);

        // A node's identity is registered by its operator, with the operator's key or a node key it made: the key's
        // account is the operator the network credits for the node's work, whatever the node's messages say. A node
        // key is bound to the first worker id it enrolls. The scheduler checks the node key's proof of possession.
        app.MapPost("/v1/nodes", Accounts.NodeKeysApi.Enroll).WithTags("Nodes")
            .Accepts<NodeEnrollmentRequest>("application/json").Produces<NodeEnrollmentResponse>(StatusCodes.Status201Created).Produces<NodeEnrollmentResponse>()
            .Problems(StatusCodes.Status403Forbidden, StatusCodes.Status409Conflict, StatusCodes.Status413PayloadTooLarge, StatusCodes.Status415UnsupportedMediaType, StatusCodes.Status422UnprocessableEntity)
            .RequireAuthorization(Roles.Enroll);

        // The network view is public: anyone deciding whether to use or join the network may look.
        app.MapGet("/v1/workers", (HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Scheduler, "/v1/workers", "")).WithTags("Network").AllowAnonymous()
            .Produces<List<WorkerView>>().Problems();
        app.MapGet("/v1/workers/{id}/placement", (string id, HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Scheduler, $"/v1/workers/{Uri.EscapeDataString(id)}/placement", "")).WithTags("Network").AllowAnonymous()
            .Produces<WorkerPlacementView>().Problems(StatusCodes.Status404NotFound);
        app.MapGet("/v1/network", (HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Scheduler, "/v1/network", "")).WithTags("Network").AllowAnonymous()
            .Produces<NetworkView>().Problems();
        app.MapGet("/v1/network/history", (HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Scheduler, "/v1/network/history", "")).WithTags("Network").AllowAnonymous()
            .Produces<NetworkHistoryView>().Problems();
        app.MapGet("/v1/workers/{id}/history", (string id, HttpContext http, UpstreamForwarder forwarder) =>
            forwarder.ForwardAsync(http, Upstream.Scheduler, $"/v1/workers/{Uri.EscapeDataString(id)}/history", "")).WithTags("Network").AllowAnonymous()
            .Produces<WorkerHistoryView>().Problems(StatusCodes.Status404NotFound);
        return app;
    }

    /// <summary>
    /// Every forwarded route may answer a problem: 400 for bad input, 401 without a valid key, 429 over the rate
    /// limit, 503 or 504 when the service behind is down or slow, and the route's own statuses.
    /// </summary>
    private static RouteHandlerBuilder Problems(this RouteHandlerBuilder route, params int[] statuses)
    {
        foreach (var status in statuses.Concat([StatusCodes.Status400BadRequest, StatusCodes.Status401Unauthorized, StatusCodes.Status429TooManyRequests,
                     StatusCodes.Status503ServiceUnavailable, StatusCodes.Status504GatewayTimeout]).Distinct())
            route.ProducesProblem(status);
        return route;
    }
}
