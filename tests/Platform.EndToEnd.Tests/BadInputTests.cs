using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Platform.Contracts;
using Platform.Contracts.Tensors;

namespace Platform.EndToEnd.Tests;

/// <summary>
/// Every kind of bad input gets a 4xx application/problem+json with a stable type (or, for what only the worker
/// can see, a failed job with a reason), and no service falls over.
/// </summary>
public sealed class BadInputTests(Network network) : IClassFixture<Network>, IAsyncLifetime
{
    private Account _client = null!;
    private Pinned _matrix = null!; // float32 [2,3]
    private Pinned _notTensor = null!;

    public async Task InitializeAsync()
    {
        _client = await network.CreateAccountAsync("client", 100m);
        using var http = network.Client(_client.Key);
        _matrix = await http.PinAsync(NpyArray.FromFloat32([1, 2, 3, 4, 5, 6], 2, 3));
        _notTensor = await http.PinAsync("just some text"u8.ToArray());
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string type)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(body);
        Assert.Equal($"urn:platform:problem:{type}", problem.RootElement.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(problem.RootElement.GetProperty("title").GetString()));
        Assert.DoesNotContain("   at ", body, StringComparison.Ordinal); // no stack trace
    }

    private async Task AssertServicesAliveAsync()
    {
        using var probe = new HttpClient();
        foreach (var service in network.Services)
        {
            Assert.False(service.HasExited, $"{service.Service} exited; log: {service.LogTail()}");
            using var ready = await probe.GetAsync(new Uri(service.BaseUrl, "/health/ready"));
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        }
    }

    private async Task<HttpResponseMessage> SubmitRawAsync(string json, string contentType = "application/json")
    {
        using var http = network.Client(_client.Key);
        return await http.PostAsync(new Uri("/v1/jobs", UriKind.Relative), new StringContent(json, Encoding.UTF8, contentType));
    }

    public static TheoryData<string, string, HttpStatusCode, string> Submissions => new()
    {
        { "malformed JSON", "{\"kernel\": \"matmul\", ", HttpStatusCode.BadRequest, "malformed-json" },
        { "not an object", "[1, 2, 3]", HttpStatusCode.BadRequest, "malformed-json" },
        { "wrong type for replicas", "{\"kernel\":\"matmul\",\"inputs\":{},\"replicas\":\"two\"}", HttpStatusCode.BadRequest, "malformed-json" },
        { "huge number", "{\"kernel\":\"matmul\",\"inputs\":{},\"replicas\":1e400}", HttpStatusCode.BadRequest, "malformed-json" },
        { "missing kernel", "{\"inputs\":{\"a\":\"MATRIX\",\"b\":\"MATRIX\"}}", HttpStatusCode.BadRequest, "validation" },
        { "unknown kernel", "{\"kernel\":\"bitcoin-miner\",\"inputs\":{\"a\":\"MATRIX\",\"b\":\"MATRIX\"}}", HttpStatusCode.BadRequest, "unknown-kernel" },
        { "malformed CID", "{\"kernel\":\"matmul\",\"inputs\":{\"a\":\"QmNotACidV1\",\"b\":\"MATRIX\"}}", HttpStatusCode.BadRequest, "validation" },
        { "path traversal as CID", "{\"kernel\":\"matmul\",\"inputs\":{\"a\":\"../../etc/passwd\",\"b\":\"MATRIX\"}}", HttpStatusCode.BadRequest, "validation" },
        { "missing input", "{\"kernel\":\"matmul\",\"inputs\":{\"a\":\"MATRIX\"}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "unexpected parameter", "{\"kernel\":\"matmul\",\"inputs\":{\"a\":\"MATRIX\",\"b\":\"MATRIX\"},\"params\":{\"k\":3}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "negative replicas", "{\"kernel\":\"matmul\",\"inputs\":{\"a\":\"MATRIX\",\"b\":\"MATRIX\"},\"replicas\":-1}", HttpStatusCode.BadRequest, "validation" },
        { "negative max price", "{\"kernel\":\"matmul\",\"inputs\":{\"a\":\"MATRIX\",\"b\":\"MATRIX\"},\"maxPrice\":-5}", HttpStatusCode.BadRequest, "validation" },
        { "unknown device", "{\"kernel\":\"matmul\",\"inputs\":{\"a\":\"MATRIX\",\"b\":\"MATRIX\"},\"requirements\":{\"device\":\"tpu\"}}", HttpStatusCode.BadRequest, "validation" },
        { "input blob not pinned", "{\"kernel\":\"matmul\",\"inputs\":{\"a\":\"UNPINNED\",\"b\":\"MATRIX\"}}", HttpStatusCode.UnprocessableEntity, "input-not-found" },
        { "input is not a tensor", "{\"kernel\":\"matmul\",\"inputs\":{\"a\":\"TEXT\",\"b\":\"MATRIX\"}}", HttpStatusCode.UnprocessableEntity, "input-invalid" },
        { "shape mismatch", "{\"kernel\":\"matmul\",\"inputs\":{\"a\":\"MATRIX\",\"b\":\"MATRIX\"}}", HttpStatusCode.UnprocessableEntity, "input-invalid" },
        { "wrong rank for vector-add", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":\"MATRIX\",\"b\":\"MATRIX\"}}", HttpStatusCode.UnprocessableEntity, "input-invalid" },
    };

    [Theory]
    [MemberData(nameof(Submissions))]
    public async Task Bad_job_submission_gets_a_problem(string what, string body, HttpStatusCode status, string type)
    {
        Assert.False(string.IsNullOrEmpty(what));
        var json = body.Replace("MATRIX", _matrix.Cid, StringComparison.Ordinal)
            .Replace("TEXT", _notTensor.Cid, StringComparison.Ordinal)
            .Replace("UNPINNED", Cid.Compute("never pinned"u8).Value, StringComparison.Ordinal);

        using var response = await SubmitRawAsync(json);

        await AssertProblemAsync(response, status, type);
        await AssertServicesAliveAsync();
    }

    [Fact]
    public async Task Body_that_is_not_json_gets_415()
    {
        using var response = await SubmitRawAsync("kernel=matmul", "application/x-www-form-urlencoded");

        await AssertProblemAsync(response, HttpStatusCode.UnsupportedMediaType, "unsupported-media-type");
    }

    [Fact]
    public async Task A_degenerate_shape_planning_an_output_past_the_limit_gets_422_naming_the_output()
    {
        // [20000,1] x [1,20000]: 0.8 GFLOP of work for a 1.6 GB output, more than one pinned blob (1 GiB) may hold.
        using var http = network.Client(_client.Key);
        var column = await http.PinAsync(NpyArray.FromFloat32(new float[20_000], 20_000, 1));
        var row = await http.PinAsync(NpyArray.FromFloat32(new float[20_000], 1, 20_000));

        using var response = await SubmitRawAsync($"{{\"kernel\":\"matmul\",\"inputs\":{{\"a\":\"{column.Cid}\",\"b\":\"{row.Cid}\"}}}}");

        await AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "output-too-large");
        var detail = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("detail").GetString()!;
        Assert.Contains("output 'c' would be float32[20000,20000], 1,600,000,000 bytes", detail, StringComparison.Ordinal);
        // A square job of the same kind well within the limit is taken.
        using var fits = await SubmitRawAsync($"{{\"kernel\":\"matmul\",\"inputs\":{{\"a\":\"{row.Cid}\",\"b\":\"{column.Cid}\"}}}}");
        Assert.Equal(HttpStatusCode.Accepted, fits.StatusCode);
    }

    [Fact]
    public async Task Shape_mismatch_problem_names_both_shapes()
    {
        // [2,3] times [4,5]: a's 3 columns do not meet b's 4 rows, and no dimension of one shape is in the other.
        using var http = network.Client(_client.Key);
        var other = await http.PinAsync(NpyArray.FromFloat32(new float[20], 4, 5));

        using var response = await SubmitRawAsync($"{{\"kernel\":\"matmul\",\"inputs\":{{\"a\":\"{_matrix.Cid}\",\"b\":\"{other.Cid}\"}}}}");

        await AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "input-invalid");
        var detail = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString();
        Assert.Contains("a is [2,3]", detail, StringComparison.Ordinal);
        Assert.Contains("b is [4,5]", detail, StringComparison.Ordinal);
    }

    public static TheoryData<string, string?, HttpStatusCode, string> Keys => new()
    {
        { "no key", null, HttpStatusCode.Unauthorized, "unauthorized" },
        { "unknown key", "pk_this-key-was-never-issued", HttpStatusCode.Unauthorized, "unauthorized" },
        { "not a bearer", "Basic", HttpStatusCode.Unauthorized, "unauthorized" },
    };

    [Theory]
    [MemberData(nameof(Keys))]
    public async Task Request_without_a_valid_key_gets_401(string what, string? key, HttpStatusCode status, string type)
    {
        Assert.False(string.IsNullOrEmpty(what));
        using var http = network.Client(null);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/jobs");
        if (key == "Basic")
            request.Headers.Authorization = new("Basic", "dXNlcjpwYXNz");
        else if (key is not null)
            request.Headers.Authorization = new("Bearer", key);

        using var response = await http.SendAsync(request);

        await AssertProblemAsync(response, status, type);
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
    }

    [Fact]
    public async Task Client_key_cannot_create_accounts()
    {
        using var http = network.Client(_client.Key);

        using var response = await http.PostAsJsonAsync("/v1/admin/accounts", new { role = "admin", name = "me", credits = 1_000_000 });

        await AssertProblemAsync(response, HttpStatusCode.Forbidden, "forbidden");
    }

    [Theory]
    [InlineData("{\"role\":\"superuser\",\"name\":\"x\",\"credits\":1}")]
    [InlineData("{\"role\":\"client\",\"name\":\"\",\"credits\":1}")]
    [InlineData("{\"role\":\"client\",\"name\":\"x\",\"credits\":-1}")]
    [InlineData("{\"role\":\"client\",\"name\":\"x\",\"credits\":0.0000001}")]
    public async Task Invalid_account_request_gets_a_validation_problem(string body)
    {
        using var http = network.Client(network.AdminKey);

        using var response = await http.PostAsync(new Uri("/v1/admin/accounts", UriKind.Relative), new StringContent(body, Encoding.UTF8, "application/json"));

        await AssertProblemAsync(response, HttpStatusCode.BadRequest, "validation");
    }

    [Fact]
    public async Task Another_clients_job_reads_as_not_found()
    {
        using var owner = network.Client(_client.Key);
        var small = await owner.PinAsync(NpyArray.FromFloat32([1f], 1));
        using var submitted = await owner.SubmitAsync(new { kernel = "vector-add", inputs = new { a = small.Cid, b = small.Cid } });
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        var intruder = await network.CreateAccountAsync("client", 1m);
        using var other = network.Client(intruder.Key);

        using var response = await other.GetAsync(new Uri($"/v1/jobs/{job.Id}", UriKind.Relative));

        await AssertProblemAsync(response, HttpStatusCode.NotFound, "job-not-found");
    }

    [Theory]
    [InlineData("/v1/blobs/not-a-cid", HttpStatusCode.BadRequest, "invalid-cid")]
    [InlineData("/v1/blobs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykU", HttpStatusCode.BadRequest, "invalid-cid")]
    [InlineData("/v1/blobs/bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", HttpStatusCode.NotFound, "blob-not-found")]
    [InlineData("/v1/blobs/bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/pin", HttpStatusCode.NotFound, "blob-not-found")]
    [InlineData("/v1/jobs/job_doesnotexist", HttpStatusCode.NotFound, "job-not-found")]
    [InlineData("/v1/jobs/acc_wrongkind", HttpStatusCode.NotFound, "job-not-found")]
    [InlineData("/v1/jobs?status=bogus", HttpStatusCode.BadRequest, "invalid-query")]
    [InlineData("/v1/jobs?limit=100000", HttpStatusCode.BadRequest, "invalid-query")]
    [InlineData("/v1/jobs?cursor=%%%", HttpStatusCode.BadRequest, "invalid-query")]
    public async Task Bad_or_unknown_ids_get_problems(string path, HttpStatusCode status, string type)
    {
        using var http = network.Client(_client.Key);

        using var response = await http.GetAsync(new Uri(path, UriKind.Relative));

        await AssertProblemAsync(response, status, type);
    }

    [Fact]
    public async Task Pins_cannot_be_deleted()
    {
        using var http = network.Client(_client.Key);

        using var response = await http.DeleteAsync(new Uri($"/v1/blobs/{_matrix.Cid}", UriKind.Relative));

        await AssertProblemAsync(response, HttpStatusCode.MethodNotAllowed, "pins-are-permanent");
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri($"/v1/blobs/{_matrix.Cid}", UriKind.Relative))).StatusCode);
    }

    [Fact]
    public async Task Tensor_truncated_after_its_header_fails_the_job_with_a_reason_and_a_refund()
    {
        // The header is valid (the gateway accepts it); the data stops short, which only the worker sees.
        var full = Npy.ToBytes(NpyArray.FromFloat32(new float[64], 64));
        using var http = network.Client(_client.Key);
        var truncated = await http.PinAsync(full[..^40]);
        var good = await http.PinAsync(NpyArray.FromFloat32(new float[64], 64));
        var before = (await http.AccountAsync()).Balance;

        using var submitted = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = truncated.Cid, b = good.Cid } });
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!;
        var done = await http.WaitForAsync(job.Id, j => j.Status is "completed" or "failed", "job finished");

        Assert.Equal("failed", done.Status);
        Assert.Equal("input_invalid", done.Error?.Reason);
        Assert.Contains("truncated", done.Error!.Detail, StringComparison.OrdinalIgnoreCase);
        await Platform.Testing.Eventually.UntilAsync(() => http.AccountAsync(), a => a.Balance == before && a.Escrowed == 0m,
            TimeSpan.FromSeconds(30), "escrow refunded");
        await AssertServicesAliveAsync();
    }

    [Fact]
    public async Task Unknown_route_is_a_problem_too()
    {
        using var http = network.Client(_client.Key);

        using var response = await http.GetAsync(new Uri("/v1/nothing-here", UriKind.Relative));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }
}
