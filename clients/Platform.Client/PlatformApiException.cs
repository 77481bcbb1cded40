using System.Net;
using System.Text.Json.Serialization;

namespace Platform.Client;

/// <summary>An RFC 9457 problem as the gateway sends it; <see cref="Type"/> is stable and made to be switched on.</summary>
public sealed record Problem
{
    public string? Type { get; init; }
    public string? Title { get; init; }
    public int? Status { get; init; }
    public string? Detail { get; init; }
    /// <summary>Validation problems: the messages for each field.</summary>
    public IReadOnlyDictionary<string, string[]>? Errors { get; init; }
    /// <summary>A refused batch (POST /v1/jobs:batch): the position of the first bad entry in <c>jobs</c>, from 0.</summary>
    public int? Index { get; init; }

    /// <summary>The last part of <see cref="Type"/> ("job-not-found" for urn:platform:problem:job-not-found).</summary>
    [JsonIgnore]
    public string? Slug => Type?[(Type.LastIndexOf(':') + 1)..];
}

/// <summary>The gateway answered with an error status; <see cref="Problem"/> says why when it sent a problem document.</summary>
public sealed class PlatformApiException : Exception
{
    public PlatformApiException(HttpStatusCode statusCode, Problem? problem, string? message = null)
        : base(message ?? Format(statusCode, problem))
    {
        StatusCode = statusCode;
        Problem = problem;
    }

    public PlatformApiException()
    {
    }

    public PlatformApiException(string message) : base(message)
    {
    }

    public PlatformApiException(string message, Exception innerException) : base(message, innerException)
    {
    }

    public HttpStatusCode StatusCode { get; }

    public Problem? Problem { get; }

    /// <summary>How long the gateway asked the caller to wait (Retry-After on a 429 or 503), if it said.</summary>
    public TimeSpan? RetryAfter { get; init; }

    internal static string Format(HttpStatusCode status, Problem? problem)
    {
        var head = problem?.Title ?? $"{(int)status} {status}";
        var text = problem?.Detail is { Length: > 0 } detail ? $"{head}: {detail}" : head;
        if (problem?.Errors is { Count: > 0 } errors)
            text += " (" + string.Join("; ", errors.Select(e => $"{e.Key}: {string.Join(" ", e.Value)}")) + ")";
        // A batch's 422 problems say what is wrong but not where; validation errors already name the entry in their keys.
        if (problem?.Index is { } index && problem.Errors?.Keys.Any(k => k.StartsWith($"jobs[{index}]", StringComparison.Ordinal)) != true)
            text += $" (at jobs[{index}])";
        return text;
    }
}
