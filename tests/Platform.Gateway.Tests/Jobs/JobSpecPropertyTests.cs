using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FsCheck;
using FsCheck.Fluent;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.FSharp.Core;
using Platform.Contracts;
using Platform.Contracts.Tensors;
using Platform.Gateway.Forwarding;
using Platform.Testing;
using Xunit.Abstractions;

namespace Platform.Gateway.Tests.Jobs;

/// <summary>
/// Random job bodies, from nearly valid to nonsense, posted to the gateway in process: every one gets a 202 or a
/// 4xx application/problem+json, never a 500. Storage is a stand-in that holds every CID as a float32 [4] tensor, so
/// bodies that pass validation go on to the header and kernel checks.
/// </summary>
public sealed class JobSpecPropertyTests(ITestOutputHelper output) : IAsyncLifetime
{
    // Fixed, so a failure replays exactly; FsCheck prints it again with any counterexample.
    private const ulong Seed = 20261127;
    private const ulong Gamma = 1442695040888963407;
    private const int Bodies = 400;
    private const string AdminKey = "pk_admin_in_process_test";

    private TestEnvironment _env = null!;
    private WebApplicationFactory<Program> _gateway = null!;

    public async Task InitializeAsync()
    {
        _env = await (await PlatformInfrastructure.GetAsync()).CreateEnvironmentAsync("gateway-jobspec-property");
        _gateway = InProcessGateway.Start(_env, services: s => s.AddHttpClient<StorageClient>().ConfigurePrimaryHttpMessageHandler(() => new EveryBlobIsAVector()));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _env.DisposeAsync();
    }

    private sealed class EveryBlobIsAVector : HttpMessageHandler
    {
        private static readonly byte[] Vector = Npy.ToBytes(NpyArray.FromFloat32([1, 2, 3, 4], 4));

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var content = new ByteArrayContent(Vector);
            content.Headers.ContentRange = new ContentRangeHeaderValue(0, Vector.Length - 1, Vector.Length);
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.PartialContent) { Content = content });
        }
    }

    private static readonly string ValidCid = Cid.Compute("x"u8).Value;

    private static Gen<JsonNode?> Scalar() => Gen.OneOf(
        Gen.Constant<JsonNode?>(null),
        Gen.Choose(-20, 20).Select(i => (JsonNode?)JsonValue.Create(i)),
        Gen.Elements<JsonNode?>(JsonValue.Create(int.MaxValue), JsonValue.Create(long.MinValue), JsonValue.Create(1e30), JsonValue.Create(-0.5),
            JsonValue.Create(1e-30), JsonValue.Create(4097), JsonValue.Create(true)),
        Gen.Elements<JsonNode?>(JsonValue.Create(ValidCid), JsonValue.Create(""), JsonValue.Create("2\0"), JsonValue.Create("NaN"), JsonValue.Create("\ud800"),
            JsonValue.Create("l2"), JsonValue.Create("cosine"), JsonValue.Create("relu"), JsonValue.Create("any"), JsonValue.Create("gpu"), JsonValue.Create("eu-west"),
            JsonValue.Create("latency"), JsonValue.Create("../../etc/passwd"), JsonValue.Create(new string('x', 5000))),
        ArbMap.Default.GeneratorFor<string>().Select(s => (JsonNode?)JsonValue.Create(s)));

    private static Gen<JsonNode?> Value() => Gen.Frequency(
        (6, Scalar()),
        (1, Scalar().ArrayOf().Select(a => (JsonNode?)new JsonArray([.. a.Select(n => n?.DeepClone())]))),
        (1, Gen.Constant<JsonNode?>(new JsonObject { ["v"] = 1 })));

    private static readonly string[] Names = ["a", "b", "points", "x", "y", "corpus", "queries", "w1", "b1", "w2", "b2", "k", "iterations", "seed", "metric",
        "epochs", "learningRate", "l2", "activation", "zz", "", "a\0"];

    private static Gen<JsonNode?> Map(Gen<JsonNode?> values) =>
        from count in Gen.Choose(0, 5)
        from keys in Gen.Elements(Names).ArrayOf(count)
        from vals in values.ArrayOf(count)
        select (JsonNode?)Build(keys, vals);

    private static JsonObject Build(string[] keys, JsonNode?[] values)
    {
        var o = new JsonObject();
        for (var i = 0; i < keys.Length; i++)
            o[keys[i]] = values[i]?.DeepClone(); // generated nodes are shared; a node has one parent
        return o;
    }

    // A vector-add of two CIDs (the stand-in holds float32 [4] for each) with in-range or hostile extras, so that
    // accepted jobs, the idempotency path and the database writes are fuzzed too, not only the refusals.
    private static Gen<string> NearlyValid() =>
        from fields in Gen.Elements("replicas", "maxPrice", "priority", "policy").ArrayOf()
        from values in Gen.Frequency((3, Gen.Choose(1, 5).Select(i => (JsonNode?)JsonValue.Create(i))), (1, Scalar())).ArrayOf(fields.Length)
        from parameters in Gen.Frequency((4, Gen.Constant<JsonNode?>(null)), (1, Map(Value())))
        select Serialize(JsonValue.Create("vector-add"), new JsonObject { ["a"] = ValidCid, ["b"] = ValidCid }, parameters, fields, values, null, -1);

    // A vector-add of two CIDs whose every extra is in range: the gateway must accept each of these.
    private static Gen<string> Valid() =>
        from replicas in Gen.Choose(1, 5).Select(i => (JsonNode?)JsonValue.Create(i))
        from maxPrice in Gen.Choose(0, 1000).Select(i => (JsonNode?)JsonValue.Create(i / 10m))
        from priority in Gen.Choose(-10, 10).Select(i => (JsonNode?)JsonValue.Create(i))
        from policy in Gen.Elements<JsonNode?>(JsonValue.Create("latency"), JsonValue.Create("energy"), JsonValue.Create("cost"), null)
        from present in Gen.Elements(true, false).ArrayOf(4)
        let fields = new[] { "replicas", "maxPrice", "priority", "policy" }.Where((_, i) => present[i]).ToArray()
        let values = new[] { replicas, maxPrice, priority, policy }.Where((_, i) => present[i]).ToArray()
        select Serialize(JsonValue.Create("vector-add"), new JsonObject { ["a"] = ValidCid, ["b"] = ValidCid }, null, fields, values, null, -1);

    /// <summary>A body, and whether it is valid by construction (so must be accepted).</summary>
    private static Gen<(string Body, bool Valid)> Bodies_() => Gen.Frequency(
        (1, Valid().Select(b => (b, true))),
        (1, NearlyValid().Select(b => (b, false))),
        (2, Hostile().Select(b => (b, false))));

    private static Gen<string> Hostile() =>
        from kernel in Gen.OneOf(Gen.Elements<JsonNode?>(
                JsonValue.Create("vector-add"), JsonValue.Create("matmul"), JsonValue.Create("kmeans"), JsonValue.Create("knn"),
                JsonValue.Create("train-logreg"), JsonValue.Create("mlp-infer")), Scalar())
        from inputs in Gen.Frequency((4, Map(Gen.Constant<JsonNode?>(JsonValue.Create(ValidCid)))), (1, Map(Scalar())), (1, Scalar()))
        from parameters in Gen.Frequency((2, Gen.Constant<JsonNode?>(null)), (3, Map(Value())), (1, Scalar()))
        from fields in Gen.Elements("replicas", "maxPrice", "priority", "policy", "requirements").ArrayOf()
        from values in Value().ArrayOf(fields.Length)
        from requirements in Map(Value())
        from damage in Gen.Frequency((5, Gen.Constant(-1)), (1, Gen.Choose(0, 200)))
        select Serialize(kernel, inputs, parameters, fields, values, requirements, damage);

    private static string Serialize(JsonNode? kernel, JsonNode? inputs, JsonNode? parameters, string[] fields, JsonNode?[] values, JsonNode? requirements, int damage)
    {
        var body = new JsonObject { ["kernel"] = kernel?.DeepClone(), ["inputs"] = inputs?.DeepClone() };
        if (parameters is not null)
            body["params"] = parameters.DeepClone();
        for (var i = 0; i < fields.Length; i++)
            body[fields[i]] = fields[i] == "requirements" ? requirements?.DeepClone() : values[i]?.DeepClone();
        var json = body.ToJsonString();
        return damage >= 0 && damage < json.Length ? json[..damage] : json; // truncated now and then
    }

    [Fact]
    public void Random_job_bodies_get_202_or_a_4xx_problem_never_a_500()
    {
        output.WriteLine($"FsCheck seed {Seed}, gamma {Gamma}, {Bodies} bodies");
        using var http = _gateway.CreateClient();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        int accepted = 0, valid = 0;
        var property = Prop.ForAll(Arb.From(Bodies_()), generated =>
        {
            var (body, mustAccept) = generated;
            var (status, contentType, location, text) = Task.Run(async () =>
            {
                using var content = new StringContent(body, Encoding.UTF8, "application/json");
                using var response = await http.PostAsync(new Uri("/v1/jobs", UriKind.Relative), content);
                return ((int)response.StatusCode, response.Content.Headers.ContentType?.MediaType, response.Headers.Location?.OriginalString,
                    await response.Content.ReadAsStringAsync());
            }).GetAwaiter().GetResult();
            if (mustAccept)
            {
                valid++;
                Assert.True(status == 202, $"a valid body got {status}: {body}: {text}");
            }
            if (status == 202)
            {
                accepted++;
                AssertIsTheJobSubmitted(body, contentType, location, text);
                return;
            }
            Assert.True(status is >= 400 and < 500, $"{status} for {body}: {text}");
            Assert.Equal("application/problem+json", contentType);
            var problem = JsonDocument.Parse(text).RootElement;
            Assert.StartsWith("urn:platform:problem:", problem.GetProperty("type").GetString(), StringComparison.Ordinal);
            Assert.Equal(status, problem.GetProperty("status").GetInt32());
        });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(Bodies)
            .WithReplay(FSharpOption<Replay>.Some(new Replay(new Rnd(Seed, Gamma), FSharpOption<int>.None))), property);
        output.WriteLine($"{accepted} of {Bodies} accepted, {valid} valid by construction");

        // The seed is fixed, so these counts are too; the bounds keep the generator honest: a quarter of the bodies
        // are valid by construction, and some nearly valid ones pass as well.
        Assert.True(valid >= Bodies / 8, $"only {valid} of {Bodies} bodies were valid by construction");
        Assert.True(accepted >= valid, $"{accepted} accepted of {valid} valid");
        Assert.True(accepted < Bodies, "every body was accepted, nonsense included");
    }

    /// <summary>A 202 answers with the job just made of this body: a new id, pending, the kernel and inputs sent, and its address.</summary>
    private static void AssertIsTheJobSubmitted(string body, string? contentType, string? location, string text)
    {
        Assert.Equal("application/json", contentType);
        var sent = JsonNode.Parse(body)!;
        var job = JsonDocument.Parse(text).RootElement;
        var id = job.GetProperty("id").GetString()!;
        Assert.True(JobId.TryParse(id, null, out _), $"'{id}' is not a job id: {text}");
        Assert.Equal($"/v1/jobs/{id}", location);
        Assert.Equal("pending", job.GetProperty("status").GetString());
        Assert.Equal(sent["kernel"]!.GetValue<string>(), job.GetProperty("kernel").GetString());
        var inputs = job.GetProperty("inputs").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString());
        Assert.Equal(sent["inputs"]!.AsObject().ToDictionary(p => p.Key, p => p.Value?.GetValue<string>()), inputs);
        Assert.Empty(job.GetProperty("attempts").EnumerateArray());
    }
}
