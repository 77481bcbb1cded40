using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.WebUtilities;

namespace Platform.Hosting.Http;

/// <summary>
/// Every error the API returns is an RFC 9457 problem with a stable <c>type</c> a client can switch on.
/// </summary>
public static class Problems
{
    private const string Prefix = "urn:platform:problem:";

    public static string Type(string slug) => Prefix + slug;

    public static ProblemHttpResult Create(int status, string slug, string title, string detail, IDictionary<string, object?>? extensions = null) =>
        TypedResults.Problem(detail: detail, statusCode: status, title: title, type: Type(slug), extensions: extensions);

    public static ProblemHttpResult BadRequest(string slug, string title, string detail) => Create(StatusCodes.Status400BadRequest, slug, title, detail);

    public static ProblemHttpResult NotFound(string slug, string title, string detail) => Create(StatusCodes.Status404NotFound, slug, title, detail);

    public static ValidationProblem Validation(IDictionary<string, string[]> errors, string detail, IDictionary<string, object?>? extensions = null) =>
        TypedResults.ValidationProblem(errors, detail: detail, title: "The request is not valid", type: Type("validation"), extensions: extensions);

    /// <summary>
    /// Gives the framework's own answers our types (registered as <c>ProblemDetailsOptions.CustomizeProblemDetails</c>):
    /// no route, a method or a content type the route does not take, a body too large or a request unreadable before
    /// any handler ran, an unhandled failure. A client then switches on one set of types; ours pass unchanged.
    /// </summary>
    public static void OwnFrameworkProblems(ProblemDetailsContext context)
    {
        var problem = context.ProblemDetails;
        if (problem.Type?.StartsWith(Prefix, StringComparison.Ordinal) == true)
            return;
        var http = context.HttpContext;
        var status = problem.Status ?? http.Response.StatusCode;
        var (slug, title, detail) = status switch
        {
            StatusCodes.Status400BadRequest => ("bad-request", "Bad request",
                "a parameter, header or the body of the request could not be read; docs/API.md describes each endpoint"),
            StatusCodes.Status404NotFound => ("not-found", "Not found", "no endpoint answers this path; docs/API.md lists them"),
            StatusCodes.Status405MethodNotAllowed => ("method-not-allowed", "Method not allowed",
                $"{http.Request.Method} is not allowed on this endpoint; allowed: {http.Response.Headers.Allow}"),
            StatusCodes.Status408RequestTimeout => ("request-timeout", "Request timeout", "the request did not arrive in time; send it again"),
            StatusCodes.Status413PayloadTooLarge => ("payload-too-large", "Request body too large", "the body is larger than this endpoint takes"),
            StatusCodes.Status415UnsupportedMediaType => ("unsupported-media-type", "Unsupported content type",
                "this endpoint does not take a body of this content type; docs/API.md says which it takes"),
            StatusCodes.Status431RequestHeaderFieldsTooLarge => ("request-headers-too-large", "Request headers too large",
                "the request's headers are larger than the server takes"),
            StatusCodes.Status500InternalServerError => ("internal-error", "Internal error",
                "the service failed to answer this request; retry, and report it if it goes on"),
            StatusCodes.Status503ServiceUnavailable => ("unavailable", "Service unavailable",
                "the service cannot reach its database for the moment; nothing was changed, retry after the time in Retry-After"),
            _ => ($"http-{status}", ReasonPhrases.GetReasonPhrase(status), null),
        };
        problem.Type = Type(slug);
        problem.Title = title;
        problem.Detail ??= detail;
        if (status == StatusCodes.Status503ServiceUnavailable && !http.Response.Headers.ContainsKey("Retry-After"))
            http.Response.Headers.RetryAfter = "5";
    }

    /// <summary>
    /// Whether an exception means the service's database cannot be reached right now (down, restarting, refusing
    /// connections, out of connections, failing over to a standby) rather than a fault of the request or the code:
    /// such a request is answered 503 with Retry-After, not 500.
    /// </summary>
    public static bool DatabaseUnavailable(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            switch (ex)
            {
                // 55000: a database that does not accept connections (ALTER DATABASE ... ALLOW_CONNECTIONS false); class 08:
                // the connection failed; 57P01-57P03: the server is shutting down or starting; 25006: a standby in recovery
                // refused a write (a failover under way).
                case Npgsql.PostgresException pg:
                    if (pg.SqlState is "55000" or "25006" or "57P01" or "57P02" or "57P03" || pg.SqlState.StartsWith("08", StringComparison.Ordinal))
                        return true;
                    break;
                // Connection refused or reset, and the like.
                case Npgsql.NpgsqlException { IsTransient: true }:
                    return true;
                // While no host of a multi-host connection string is the primary (a failover under way), Npgsql says so
                // only in words.
                case Npgsql.NpgsqlException npgsql when npgsql.Message.StartsWith("No suitable host", StringComparison.Ordinal):
                    return true;
            }
        }
        return false;
    }
}
