using System.Net;
using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Platform.Client;
using Platform.Contracts.Api;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.Gateway.Tests.Documentation;

/// <summary>
/// One source of truth for the API: the gateway's OpenAPI document (made from the server's own route metadata),
/// the SDK (Platform.Client, whose methods name the operation they call with <see cref="ApiOperationAttribute"/>)
/// and the types both use (Platform.Contracts.Api) agree for every endpoint: every operation has an SDK method,
/// every method's operation exists, it returns the type the operation answers with and sends the type it takes,
/// and every schema has exactly the JSON properties of its type as the gateway serializes it.
/// </summary>
public sealed class SdkAgreementTests(ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>Operations no SDK method calls, each with why.</summary>
    private static readonly Dictionary<string, string> NotInTheSdk = new()
    {
        ["GET /health/live"] = "a probe for orchestrators, not an API call",
        ["GET /health/ready"] = "a probe for orchestrators, not an API call",
        ["GET /metrics"] = "for Prometheus to scrape",
        ["POST /v1/nodes"] = "a node enrolls itself with its node key and a proof of possession (services/worker's enrollment)",
        ["DELETE /v1/blobs/{cid}"] = "pins are permanent: the route exists to answer 405 and say so",
    };

    private TestEnvironment _env = null!;
    private WebApplicationFactory<Program> _gateway = null!;
    private JsonDocument _document = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("gateway-sdk-agreement");
        _gateway = InProcessGateway.Start(_env);
        using var http = _gateway.CreateClient();
        using var response = await http.GetAsync(new Uri("/openapi/v1.json", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        _document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
    }

    public async Task DisposeAsync()
    {
        _document?.Dispose();
        await _gateway.DisposeAsync();
        await _env.DisposeAsync();
    }

    private static IEnumerable<(MethodInfo Method, ApiOperationAttribute Operation)> SdkMethods() =>
        typeof(PlatformClient).GetMethods(BindingFlags.Public | BindingFlags.Instance)
            .Select(m => (m, m.GetCustomAttribute<ApiOperationAttribute>()))
            .Where(x => x.Item2 is not null)
            .Select(x => (x.m, x.Item2!));

    private Dictionary<string, JsonElement> Operations() =>
        _document.RootElement.GetProperty("paths").EnumerateObject()
            .SelectMany(path => path.Value.EnumerateObject()
                .Where(op => op.Name is "get" or "put" or "post" or "delete" or "patch" or "head")
                .Select(op => ($"{op.Name.ToUpperInvariant()} {path.Name}", op.Value)))
            .ToDictionary(x => x.Item1, x => x.Value);

    [Fact]
    public void Every_documented_operation_has_an_sdk_method_and_every_sdk_method_calls_a_documented_operation()
    {
        var documented = Operations().Keys.ToHashSet();
        var called = SdkMethods().Select(m => m.Operation.Operation).ToHashSet();
        output.WriteLine($"{documented.Count} documented operations, {called.Count} called by the SDK, {NotInTheSdk.Count} not in the SDK by design");

        Assert.Empty(documented.Except(called).Except(NotInTheSdk.Keys).Order());
        Assert.Empty(called.Except(documented).Order());
        Assert.Empty(NotInTheSdk.Keys.Intersect(called).Order()); // an exemption the SDK now covers is stale
        Assert.Empty(NotInTheSdk.Keys.Except(documented).Order());
    }

    [Fact]
    public void Every_sdk_method_returns_what_its_operation_answers_and_sends_what_it_takes()
    {
        var operations = Operations();
        var failures = new List<string>();
        foreach (var (method, attribute) in SdkMethods())
        {
            if (!operations.TryGetValue(attribute.Operation, out var operation))
                continue; // the other test names it
            var name = $"{method.Name} ({attribute.Operation})";

            var answered = SuccessSchema(operation);
            var returned = Returned(method.ReturnType);
            if (answered is { } schema && returned is { } type && SchemaName(schema) != TypeName(type))
                failures.Add($"{name}: returns {TypeName(type)}, the operation answers {SchemaName(schema)}");
            if (answered is not null && returned is null && method.ReturnType == typeof(Task))
                failures.Add($"{name}: returns nothing, the operation answers {SchemaName(answered.Value)}");
            if (answered is null && returned is { } unexpected && unexpected.Namespace == typeof(JobView).Namespace)
                failures.Add($"{name}: returns {unexpected.Name}, the operation answers no JSON");

            var taken = RequestSchema(operation);
            var sent = attribute.Body ?? method.GetParameters().Select(p => p.ParameterType).FirstOrDefault(t => t.Namespace == typeof(JobView).Namespace);
            if (taken is { } body && SchemaName(body) != (sent is null ? null : TypeName(sent)))
                failures.Add($"{name}: sends {(sent is null ? "no JSON" : TypeName(sent))}, the operation takes {SchemaName(body)}");
            if (taken is null && sent is not null)
                failures.Add($"{name}: sends {TypeName(sent)}, the operation takes no JSON body");
        }
        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Fact]
    public void Every_schema_has_the_json_properties_of_its_contract_type_as_the_gateway_serializes_it()
    {
        var json = _gateway.Services.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;
        var contracts = typeof(JobView).Assembly.GetExportedTypes().GroupBy(t => t.Name).Where(g => g.Count() == 1).ToDictionary(g => g.Key, g => g.Single());
        var schemas = _document.RootElement.GetProperty("components").GetProperty("schemas");
        var failures = new List<string>();
        var compared = 0;
        foreach (var schema in schemas.EnumerateObject())
        {
            if (!contracts.TryGetValue(schema.Name, out var type) || !schema.Value.TryGetProperty("properties", out var properties))
                continue;
            compared++;
            var documented = properties.EnumerateObject().Select(p => p.Name).ToHashSet();
            var serialized = json.GetTypeInfo(type).Properties.Select(p => p.Name).ToHashSet();
            if (!documented.SetEquals(serialized))
                failures.Add($"{schema.Name}: documented [{string.Join(", ", documented.Order())}], serialized [{string.Join(", ", serialized.Order())}]");
        }
        output.WriteLine($"{compared} schemas compared with their contract types");
        Assert.True(compared >= 40, $"only {compared} schemas matched a contract type: the document or the lookup changed");
        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    // The JSON body of the first success response (200, 201 or 202), if it has one.
    private static JsonElement? SuccessSchema(JsonElement operation)
    {
        foreach (var status in new[] { "200", "201", "202" })
        {
            if (operation.GetProperty("responses").TryGetProperty(status, out var response) && response.TryGetProperty("content", out var content)
                && content.TryGetProperty("application/json", out var media) && media.TryGetProperty("schema", out var schema))
                return schema;
        }
        return null;
    }

    private static JsonElement? RequestSchema(JsonElement operation) =>
        operation.TryGetProperty("requestBody", out var body) && body.GetProperty("content").TryGetProperty("application/json", out var media)
            && media.TryGetProperty("schema", out var schema) ? schema : null;

    // "JobView", or "[WorkerView]" for an array of them.
    private static string SchemaName(JsonElement schema) =>
        schema.TryGetProperty("$ref", out var reference) ? reference.GetString()!.Split('/')[^1]
        : schema.TryGetProperty("items", out var items) ? $"[{SchemaName(items)}]"
        : schema.GetRawText();

    private static string TypeName(Type type) =>
        type.IsArray ? $"[{TypeName(type.GetElementType()!)}]"
        : type.IsGenericType && type.GetGenericTypeDefinition() is var open && (open == typeof(List<>) || open == typeof(IReadOnlyList<>))
            ? $"[{TypeName(type.GetGenericArguments()[0])}]"
        : type.Name;

    // What a method hands back from the body: Task<T>'s T; null for a Task, a stream of events, the raw bytes of a
    // body kept as sent (the receipt) or a download.
    private static Type? Returned(Type type)
    {
        if (!type.IsGenericType || type.GetGenericTypeDefinition() != typeof(Task<>))
            return null;
        var result = type.GetGenericArguments()[0];
        return result == typeof(byte[]) || result == typeof(long) || result.Namespace == typeof(PlatformClient).Namespace ? null : result;
    }
}
