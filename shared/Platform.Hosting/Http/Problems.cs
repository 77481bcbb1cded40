using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Platform.Hosting.Http;

/// <summary>
/// Every error the API returns is an RFC 9457 problem with a stable <c>type</c> a client can switch on.
/// </summary>
public static class Problems
{
    public static string Type(string slug) => $"urn:platform:problem:{slug}";

    public static ProblemHttpResult Create(int status, string slug, string title, string detail, IDictionary<string, object?>? extensions = null) =>
        TypedResults.Problem(detail: detail, statusCode: status, title: title, type: Type(slug), extensions: extensions);

    public static ProblemHttpResult BadRequest(string slug, string title, string detail) => Create(StatusCodes.Status400BadRequest, slug, title, detail);

    public static ProblemHttpResult NotFound(string slug, string title, string detail) => Create(StatusCodes.Status404NotFound, slug, title, detail);

    public static ValidationProblem Validation(IDictionary<string, string[]> errors, string detail, IDictionary<string, object?>? extensions = null) =>
        TypedResults.ValidationProblem(errors, detail: detail, title: "The request is not valid", type: Type("validation"), extensions: extensions);
}
