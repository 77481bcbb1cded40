using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Platform.Contracts;
using Platform.Contracts.Tensors;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>
/// Hostile input through the real gateway (issue "Prove it under faults, load and hostile input", item 4): every
/// case gets its 4xx application/problem+json with the stable type and no stack trace or exception name, or, for
/// what only a worker can judge, a failed job with its reason; after each case every service is still up.
/// BadInputTests holds the first, friendlier cases; none of them is repeated here.
/// </summary>
public sealed class HostileInputTests(UnlimitedNetwork network, ITestOutputHelper output) : IClassFixture<UnlimitedNetwork>, IAsyncLifetime
{
    private Account _client = null!;
    private Account _intruder = null!;
    private Account _operator = null!;
    private Pinned _matrix = null!; // float32 [2,3]
    private Pinned _vector = null!; // float32 [4]
    private Pinned _points = null!; // float32 [8,2]
    private string _clientJob = null!;

    public async Task InitializeAsync()
    {
        _client = await network.CreateAccountAsync("client", 100m);
        _intruder = await network.CreateAccountAsync("client", 1m);
        _operator = await network.CreateAccountAsync("operator", 5m);
        using var http = network.Client(_client.Key);
        _matrix = await http.PinAsync(NpyArray.FromFloat32([1, 2, 3, 4, 5, 6], 2, 3));
        _vector = await http.PinAsync(NpyArray.FromFloat32([1, 2, 3, 4], 4));
        _points = await http.PinAsync(NpyArray.FromFloat32([0, 0, 1, 1, 2, 2, 3, 3, 10, 10, 11, 11, 12, 12, 13, 13], 8, 2));
        using var submitted = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = _vector.Cid, b = _vector.Cid } });
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
        _clientJob = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!.Id;
    }

    public Task DisposeAsync() => Task.CompletedTask;

    // ---- the tables -------------------------------------------------------------------------------------------

    private const string Vec = "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":\"VEC\",\"b\":\"VEC\"}";
    private const string KMeans = "{\"kernel\":\"kmeans\",\"inputs\":{\"points\":\"POINTS\"}";
    private const string Knn = "{\"kernel\":\"knn\",\"inputs\":{\"corpus\":\"POINTS\",\"queries\":\"POINTS\"}";
    private const string LogReg = "{\"kernel\":\"train-logreg\",\"inputs\":{\"x\":\"POINTS\",\"y\":\"VEC\"}";
    private const string EmptyCid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

    /// <summary>POST /v1/jobs bodies. A "utf16:" or "latin1:" prefix sends the rest in that encoding.</summary>
    public static TheoryData<string, string, HttpStatusCode, string> JobBodies => new()
    {
        // malformed JSON
        { "empty body", "", HttpStatusCode.BadRequest, "malformed-json" },
        { "JSON null", "null", HttpStatusCode.BadRequest, "malformed-json" },
        { "a bare string", "\"matmul\"", HttpStatusCode.BadRequest, "malformed-json" },
        { "a bare number", "42", HttpStatusCode.BadRequest, "malformed-json" },
        { "a bare boolean", "true", HttpStatusCode.BadRequest, "malformed-json" },
        { "truncated inside a string", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":\"bafkr", HttpStatusCode.BadRequest, "malformed-json" },
        { "truncated after a colon", "{\"kernel\":", HttpStatusCode.BadRequest, "malformed-json" },
        { "only an opening brace", "{", HttpStatusCode.BadRequest, "malformed-json" },
        { "trailing garbage after the object", Vec + "} {}", HttpStatusCode.BadRequest, "malformed-json" },
        { "trailing comma", Vec + ",}", HttpStatusCode.BadRequest, "malformed-json" },
        { "single-quoted strings", "{'kernel':'vector-add'}", HttpStatusCode.BadRequest, "malformed-json" },
        { "comment in the body", "/* hi */" + Vec + "}", HttpStatusCode.BadRequest, "malformed-json" },
        { "NaN literal", Vec + ",\"maxPrice\":NaN}", HttpStatusCode.BadRequest, "malformed-json" },
        { "unquoted key", "{kernel:\"vector-add\"}", HttpStatusCode.BadRequest, "malformed-json" },
        { "10,000 nested arrays in params", KMeans + ",\"params\":{\"k\":NESTARRAYS}}", HttpStatusCode.BadRequest, "malformed-json" },
        { "10,000 nested objects", "NESTOBJECTS", HttpStatusCode.BadRequest, "malformed-json" },
        { "lone surrogate escape in kernel", "{\"kernel\":\"\\ud800\",\"inputs\":{\"a\":\"VEC\",\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "malformed-json" },
        { "invalid UTF-8 in a string", "latin1:{\"kernel\":\"vector-add\u00e9\",\"inputs\":{\"a\":\"VEC\",\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "malformed-json" },
        { "UTF-16 with its BOM", "utf16:" + Vec + "}", HttpStatusCode.BadRequest, "malformed-json" },
        { "UTF-8 BOM then truncated JSON", "\uFEFF{\"kernel\":", HttpStatusCode.BadRequest, "malformed-json" },
        { "two UTF-8 BOMs", "\uFEFF\uFEFF" + Vec + "}", HttpStatusCode.BadRequest, "malformed-json" },
        { "UTF-8 BOM is read past: missing kernel", "\uFEFF{\"inputs\":{\"a\":\"VEC\",\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "validation" },
        { "duplicate kernel key, last one unknown", "{\"kernel\":\"vector-add\",\"kernel\":\"bitcoin-miner\",\"inputs\":{\"a\":\"VEC\",\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "unknown-kernel" },
        { "duplicate input key, last one not a CID", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":\"VEC\",\"b\":\"VEC\",\"b\":\"nope\"}}", HttpStatusCode.BadRequest, "validation" },
        // wrong types
        { "kernel is a number", "{\"kernel\":5,\"inputs\":{\"a\":\"VEC\",\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "malformed-json" },
        { "kernel is an array", "{\"kernel\":[\"vector-add\"],\"inputs\":{\"a\":\"VEC\",\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "malformed-json" },
        { "inputs is an array", "{\"kernel\":\"vector-add\",\"inputs\":[\"VEC\",\"VEC\"]}", HttpStatusCode.BadRequest, "malformed-json" },
        { "inputs is a string", "{\"kernel\":\"vector-add\",\"inputs\":\"VEC\"}", HttpStatusCode.BadRequest, "malformed-json" },
        { "an input CID is a number", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":1,\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "malformed-json" },
        { "an input CID is null", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":null,\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "validation" },
        { "params is a string", Vec + ",\"params\":\"k=3\"}", HttpStatusCode.BadRequest, "malformed-json" },
        { "requirements is a string", Vec + ",\"requirements\":\"gpu\"}", HttpStatusCode.BadRequest, "malformed-json" },
        { "maxPrice as a string", Vec + ",\"maxPrice\":\"5\"}", HttpStatusCode.BadRequest, "malformed-json" },
        { "replicas as a string number", Vec + ",\"replicas\":\"1\"}", HttpStatusCode.BadRequest, "malformed-json" },
        { "replicas as a boolean", Vec + ",\"replicas\":true}", HttpStatusCode.BadRequest, "malformed-json" },
        { "replicas as a fraction", Vec + ",\"replicas\":1.5}", HttpStatusCode.BadRequest, "malformed-json" },
        { "priority as an object", Vec + ",\"priority\":{}}", HttpStatusCode.BadRequest, "malformed-json" },
        // huge and negative numbers
        { "replicas 0", Vec + ",\"replicas\":0}", HttpStatusCode.BadRequest, "validation" },
        { "replicas 6", Vec + ",\"replicas\":6}", HttpStatusCode.BadRequest, "validation" },
        { "replicas int.MaxValue", Vec + ",\"replicas\":2147483647}", HttpStatusCode.BadRequest, "validation" },
        { "replicas int.MinValue", Vec + ",\"replicas\":-2147483648}", HttpStatusCode.BadRequest, "validation" },
        { "replicas past int", Vec + ",\"replicas\":2147483648}", HttpStatusCode.BadRequest, "malformed-json" },
        { "maxPrice past decimal", Vec + ",\"maxPrice\":79228162514264337593543950336}", HttpStatusCode.BadRequest, "malformed-json" },
        { "maxPrice 1e30", Vec + ",\"maxPrice\":1e30}", HttpStatusCode.BadRequest, "malformed-json" },
        { "maxPrice a millionth below zero", Vec + ",\"maxPrice\":-0.000001}", HttpStatusCode.BadRequest, "validation" },
        { "priority 11", Vec + ",\"priority\":11}", HttpStatusCode.BadRequest, "validation" },
        { "priority -11", Vec + ",\"priority\":-11}", HttpStatusCode.BadRequest, "validation" },
        { "priority past int", Vec + ",\"priority\":99999999999}", HttpStatusCode.BadRequest, "malformed-json" },
        { "minMemoryMb -1", Vec + ",\"requirements\":{\"minMemoryMb\":-1}}", HttpStatusCode.BadRequest, "validation" },
        { "minMemoryMb long.MinValue", Vec + ",\"requirements\":{\"minMemoryMb\":-9223372036854775808}}", HttpStatusCode.BadRequest, "validation" },
        { "minMemoryMb past long", Vec + ",\"requirements\":{\"minMemoryMb\":9223372036854775808}}", HttpStatusCode.BadRequest, "malformed-json" },
        { "minMemoryMb 1e30", Vec + ",\"requirements\":{\"minMemoryMb\":1e30}}", HttpStatusCode.BadRequest, "malformed-json" },
        // kernel parameters
        { "kmeans k=-1", KMeans + ",\"params\":{\"k\":-1}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "kmeans k=0", KMeans + ",\"params\":{\"k\":0}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "kmeans k=1e30", KMeans + ",\"params\":{\"k\":1e30}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "kmeans k=1e400 (infinite)", KMeans + ",\"params\":{\"k\":1e400}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "kmeans k=2.5", KMeans + ",\"params\":{\"k\":2.5}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "kmeans k=\"NaN\"", KMeans + ",\"params\":{\"k\":\"NaN\"}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "kmeans k=\"Infinity\"", KMeans + ",\"params\":{\"k\":\"Infinity\"}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "kmeans k=\"0x10\"", KMeans + ",\"params\":{\"k\":\"0x10\"}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "kmeans k=true", KMeans + ",\"params\":{\"k\":true}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "kmeans k=null", KMeans + ",\"params\":{\"k\":null}}", HttpStatusCode.BadRequest, "validation" },
        { "kmeans k is an object", KMeans + ",\"params\":{\"k\":{\"v\":2}}}", HttpStatusCode.BadRequest, "validation" },
        { "kmeans k is an array", KMeans + ",\"params\":{\"k\":[2]}}", HttpStatusCode.BadRequest, "validation" },
        { "kmeans k with a NUL after it", KMeans + ",\"params\":{\"k\":\"2\\u0000\"}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "kmeans k=4097", KMeans + ",\"params\":{\"k\":4097}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "kmeans iterations=0", KMeans + ",\"params\":{\"k\":2,\"iterations\":0}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "kmeans iterations=1e9", KMeans + ",\"params\":{\"k\":2,\"iterations\":1000000000}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "kmeans seed=-1", KMeans + ",\"params\":{\"k\":2,\"seed\":-1}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "kmeans seed past int", KMeans + ",\"params\":{\"k\":2,\"seed\":2147483648}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "kmeans k above the points", KMeans + ",\"params\":{\"k\":9}}", HttpStatusCode.UnprocessableEntity, "input-invalid" },
        { "kmeans unknown parameter", KMeans + ",\"params\":{\"k\":2,\"__proto__\":1}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "knn metric manhattan", Knn + ",\"params\":{\"metric\":\"manhattan\"}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "knn metric with a NUL", Knn + ",\"params\":{\"metric\":\"l2\\u0000\"}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "knn k=1025", Knn + ",\"params\":{\"k\":1025}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "train-logreg learningRate 0", LogReg + ",\"params\":{\"learningRate\":0}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "train-logreg epochs 100001", LogReg + ",\"params\":{\"epochs\":100001}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "train-logreg l2 -1", LogReg + ",\"params\":{\"l2\":-1}}", HttpStatusCode.BadRequest, "invalid-job" },
        // other fields
        { "policy fastest", Vec + ",\"policy\":\"fastest\"}", HttpStatusCode.BadRequest, "validation" },
        { "device empty", Vec + ",\"requirements\":{\"device\":\"\"}}", HttpStatusCode.BadRequest, "validation" },
        { "device upper case", Vec + ",\"requirements\":{\"device\":\"GPU\"}}", HttpStatusCode.BadRequest, "validation" },
        { "region upper case", Vec + ",\"requirements\":{\"region\":\"EU-WEST\"}}", HttpStatusCode.BadRequest, "validation" },
        { "region empty", Vec + ",\"requirements\":{\"region\":\"\"}}", HttpStatusCode.BadRequest, "validation" },
        { "region 33 characters", Vec + ",\"requirements\":{\"region\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}", HttpStatusCode.BadRequest, "validation" },
        { "region with a NUL", Vec + ",\"requirements\":{\"region\":\"eu\\u0000\"}}", HttpStatusCode.BadRequest, "validation" },
        { "region with a newline", Vec + ",\"requirements\":{\"region\":\"eu\\nwest\"}}", HttpStatusCode.BadRequest, "validation" },
        { "inputs empty", "{\"kernel\":\"vector-add\",\"inputs\":{}}", HttpStatusCode.BadRequest, "validation" },
        { "input name with a NUL", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\\u0000\":\"VEC\",\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "a thousand extra inputs", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":\"VEC\",\"b\":\"VEC\"THOUSANDINPUTS}}", HttpStatusCode.BadRequest, "invalid-job" },
        // huge strings (under the 1 MiB body limit)
        { "900 KB kernel name", "{\"kernel\":\"HUGE\",\"inputs\":{\"a\":\"VEC\",\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "unknown-kernel" },
        { "900 KB input CID", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":\"HUGE\",\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "validation" },
        { "900 KB parameter value", KMeans + ",\"params\":{\"k\":\"HUGE\"}}", HttpStatusCode.BadRequest, "invalid-job" },
        { "900 KB region", Vec + ",\"requirements\":{\"region\":\"HUGE\"}}", HttpStatusCode.BadRequest, "validation" },
        { "2 MB body", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":\"VEC\",\"b\":\"VEC\"},\"policy\":\"HUGEHUGE\"}", HttpStatusCode.RequestEntityTooLarge, "payload-too-large" },
        // invalid CIDs as inputs
        { "CIDv0 input", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":\"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG\",\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "validation" },
        { "upper-case CID input", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":\"UPPERVEC\",\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "validation" },
        { "dag-pb CID input", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":\"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi\",\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "validation" },
        { "CID input with spaces around", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":\" VEC \",\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "validation" },
        { "empty CID input", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":\"\",\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "validation" },
        { "URL-encoded slashes as CID input", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":\"..%2F..%2Fetc%2Fpasswd\",\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "validation" },
        { "unicode CID input", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":\"bafkrei\u00fc\u00df\u4e2d\",\"b\":\"VEC\"}}", HttpStatusCode.BadRequest, "validation" },
        { "the empty blob is not a tensor (unpinned here)", "{\"kernel\":\"vector-add\",\"inputs\":{\"a\":\"" + EmptyCid + "\",\"b\":\"VEC\"}}", HttpStatusCode.UnprocessableEntity, "input-not-found" },
    };

    [Theory]
    [MemberData(nameof(JobBodies))]
    public async Task Hostile_job_body_gets_its_problem(string what, string body, HttpStatusCode status, string type)
    {
        output.WriteLine(what);
        using var http = network.Client(_client.Key);
        // As curl does for big bodies: the gateway refuses an oversized one before reading it and closes the
        // connection, and a client still sending would see a broken pipe instead of the 413 it was sent.
        http.DefaultRequestHeaders.ExpectContinue = true;
        using var content = Body(Expand(body), "application/json");

        using var response = await http.PostAsync(new Uri("/v1/jobs", UriKind.Relative), content);

        await AssertProblemAsync(response, status, type);
        await AssertServicesAliveAsync();
    }

    /// <summary>Any request: who sends it, how, where, with what; the answer expected.</summary>
    public static TheoryData<string, string, string, string, string?, string?, HttpStatusCode, string> Requests => new()
    {
        // malformed CIDs and ids in paths
        { "CIDv0 blob", "client", "GET", "/v1/blobs/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "base58btc multibase", "client", "GET", "/v1/blobs/zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "dag-pb codec", "client", "GET", "/v1/blobs/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "blake2b hash", "client", "GET", "/v1/blobs/bafk2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "whole CID upper case", "client", "GET", "/v1/blobs/UPPERVEC", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "CID one character short", "client", "GET", "/v1/blobs/SHORTVEC", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "CID one character long", "client", "GET", "/v1/blobs/VECa", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "CID of 5,000 characters", "client", "GET", "/v1/blobs/LONGCID", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "CID non-canonical last character", "client", "GET", "/v1/blobs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykv", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "CID with padding", "client", "GET", "/v1/blobs/VEC%3D", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "unicode CID", "client", "GET", "/v1/blobs/bafkrei%C3%BC%C3%9F%E4%B8%AD", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "URL-encoded traversal", "client", "GET", "/v1/blobs/..%2F..%2Fetc%2Fpasswd", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "URL-encoded backslashes", "client", "GET", "/v1/blobs/..%5C..%5Cwindows%5Cwin.ini", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "pin of CIDv0", "client", "GET", "/v1/blobs/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG/pin", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "pin of upper case", "client", "GET", "/v1/blobs/UPPERVEC/pin", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "pin of traversal", "client", "GET", "/v1/blobs/..%2F..%2Fetc%2Fpasswd/pin", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "pin of unicode", "client", "GET", "/v1/blobs/%E2%80%AEbafkrei/pin", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "proof chunk -1", "client", "GET", "/v1/blobs/VEC/proof?chunk=-1", null, null, HttpStatusCode.BadRequest, "invalid-chunk" },
        { "proof chunk 99999", "client", "GET", "/v1/blobs/VEC/proof?chunk=99999", null, null, HttpStatusCode.BadRequest, "invalid-chunk" },
        { "proof chunk abc", "client", "GET", "/v1/blobs/VEC/proof?chunk=abc", null, null, HttpStatusCode.BadRequest, "invalid-chunk" },
        { "proof chunk past int", "client", "GET", "/v1/blobs/VEC/proof?chunk=2147483648", null, null, HttpStatusCode.BadRequest, "invalid-chunk" },
        { "proof chunk 1e3", "client", "GET", "/v1/blobs/VEC/proof?chunk=1e3", null, null, HttpStatusCode.BadRequest, "invalid-chunk" },
        { "proof chunk missing", "client", "GET", "/v1/blobs/VEC/proof", null, null, HttpStatusCode.BadRequest, "invalid-chunk" },
        { "proof chunk empty", "client", "GET", "/v1/blobs/VEC/proof?chunk=", null, null, HttpStatusCode.BadRequest, "invalid-chunk" },
        { "proof of a malformed CID", "client", "GET", "/v1/blobs/Qm/proof?chunk=0", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "proof of an unknown CID", "client", "GET", "/v1/blobs/UNPINNED/proof?chunk=0", null, null, HttpStatusCode.NotFound, "blob-not-found" },
        { "dataset of a malformed CID", "client", "GET", "/v1/datasets/..%2F..%2Fetc%2Fpasswd", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "dataset of CIDv0", "client", "GET", "/v1/datasets/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", null, null, HttpStatusCode.BadRequest, "invalid-cid" },
        { "dataset of an unknown CID", "client", "GET", "/v1/datasets/UNPINNED", null, null, HttpStatusCode.NotFound, "dataset-not-found" },
        { "dataset of a blob that is no dataset", "client", "GET", "/v1/datasets/VEC", null, null, HttpStatusCode.NotFound, "dataset-not-found" },
        { "range past the end", "client", "GET", "/v1/blobs/VEC#Range: bytes=99999-", null, null, HttpStatusCode.RequestedRangeNotSatisfiable, "range-not-satisfiable" },
        { "job id of 5,000 characters", "client", "GET", "/v1/jobs/job_LONGCID", null, null, HttpStatusCode.NotFound, "job-not-found" },
        { "job id with SQL", "client", "GET", "/v1/jobs/job_'%20or%20'1'='1", null, null, HttpStatusCode.NotFound, "job-not-found" },
        // queries
        { "jobs limit 0", "client", "GET", "/v1/jobs?limit=0", null, null, HttpStatusCode.BadRequest, "invalid-query" },
        { "jobs limit -1", "client", "GET", "/v1/jobs?limit=-1", null, null, HttpStatusCode.BadRequest, "invalid-query" },
        { "jobs limit abc (bound by the framework)", "client", "GET", "/v1/jobs?limit=abc", null, null, HttpStatusCode.BadRequest, "bad-request" },
        { "jobs limit past int (bound by the framework)", "client", "GET", "/v1/jobs?limit=99999999999", null, null, HttpStatusCode.BadRequest, "bad-request" },
        { "jobs status upper case", "client", "GET", "/v1/jobs?status=COMPLETED", null, null, HttpStatusCode.BadRequest, "invalid-query" },
        { "jobs cursor with a NUL id", "client", "GET", "/v1/jobs?cursor=NULCURSOR", null, null, HttpStatusCode.BadRequest, "invalid-query" },
        { "jobs cursor with huge ticks", "client", "GET", "/v1/jobs?cursor=HUGETICKSCURSOR", null, null, HttpStatusCode.BadRequest, "invalid-query" },
        { "ledger limit 0", "client", "GET", "/v1/account/ledger?limit=0", null, null, HttpStatusCode.BadRequest, "invalid-limit" },
        { "ledger limit 201", "client", "GET", "/v1/account/ledger?limit=201", null, null, HttpStatusCode.BadRequest, "invalid-limit" },
        { "ledger limit -5", "client", "GET", "/v1/account/ledger?limit=-5", null, null, HttpStatusCode.BadRequest, "invalid-limit" },
        { "ledger limit 1e2", "client", "GET", "/v1/account/ledger?limit=1e2", null, null, HttpStatusCode.BadRequest, "invalid-limit" },
        { "ledger cursor garbage", "client", "GET", "/v1/account/ledger?cursor=%25%25%25", null, null, HttpStatusCode.BadRequest, "invalid-cursor" },
        { "ledger cursor of three parts", "client", "GET", "/v1/account/ledger?cursor=MS4yLjM", null, null, HttpStatusCode.BadRequest, "invalid-cursor" },
        { "ledger cursor negative", "client", "GET", "/v1/account/ledger?cursor=LTEuMg", null, null, HttpStatusCode.BadRequest, "invalid-cursor" },
        // datasets
        { "dataset of 100,000 CIDs", "client", "POST", "/v1/datasets", "application/json", "{\"name\":\"d\",\"license\":\"MIT\",\"blobs\":CIDS100000}", HttpStatusCode.RequestEntityTooLarge, "payload-too-large" },
        { "dataset of 10,001 CIDs", "client", "POST", "/v1/datasets", "application/json", "{\"name\":\"d\",\"license\":\"MIT\",\"blobs\":CIDS10001}", HttpStatusCode.BadRequest, "validation" },
        { "dataset without blobs", "client", "POST", "/v1/datasets", "application/json", "{\"name\":\"d\",\"license\":\"MIT\",\"blobs\":[]}", HttpStatusCode.BadRequest, "validation" },
        { "dataset blob is a number", "client", "POST", "/v1/datasets", "application/json", "{\"name\":\"d\",\"license\":\"MIT\",\"blobs\":[1]}", HttpStatusCode.BadRequest, "malformed-json" },
        { "dataset blob is CIDv0", "client", "POST", "/v1/datasets", "application/json", "{\"name\":\"d\",\"license\":\"MIT\",\"blobs\":[\"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG\"]}", HttpStatusCode.BadRequest, "validation" },
        { "dataset blob is a traversal", "client", "POST", "/v1/datasets", "application/json", "{\"name\":\"d\",\"license\":\"MIT\",\"blobs\":[\"../../etc/passwd\"]}", HttpStatusCode.BadRequest, "validation" },
        { "dataset name with a NUL", "client", "POST", "/v1/datasets", "application/json", "{\"name\":\"d\\u0000x\",\"license\":\"MIT\",\"blobs\":[\"VEC\"]}", HttpStatusCode.BadRequest, "validation" },
        { "dataset name of 201 characters", "client", "POST", "/v1/datasets", "application/json", "{\"name\":\"NAME201\",\"license\":\"MIT\",\"blobs\":[\"VEC\"]}", HttpStatusCode.BadRequest, "validation" },
        { "dataset license with SQL", "client", "POST", "/v1/datasets", "application/json", "{\"name\":\"d\",\"license\":\"MIT'; drop table pins; --\",\"blobs\":[\"VEC\"]}", HttpStatusCode.BadRequest, "validation" },
        { "dataset of an unpinned blob", "client", "POST", "/v1/datasets", "application/json", "{\"name\":\"d\",\"license\":\"MIT\",\"blobs\":[\"UNPINNED\"]}", HttpStatusCode.UnprocessableEntity, "blob-not-found" },
        { "dataset description 10,001 characters", "client", "POST", "/v1/datasets", "application/json", "{\"name\":\"d\",\"license\":\"MIT\",\"description\":\"DESC10001\",\"blobs\":[\"VEC\"]}", HttpStatusCode.BadRequest, "validation" },
        // stakes and accounts
        { "stake 0", "operator", "POST", "/v1/account/stake", "application/json", "{\"amount\":0}", HttpStatusCode.BadRequest, "validation" },
        { "stake -5", "operator", "POST", "/v1/account/stake", "application/json", "{\"amount\":-5}", HttpStatusCode.BadRequest, "validation" },
        { "stake a ten-millionth", "operator", "POST", "/v1/account/stake", "application/json", "{\"amount\":0.0000001}", HttpStatusCode.BadRequest, "validation" },
        { "stake as a string", "operator", "POST", "/v1/account/stake", "application/json", "{\"amount\":\"5\"}", HttpStatusCode.BadRequest, "malformed-json" },
        { "stake 1e30", "operator", "POST", "/v1/account/stake", "application/json", "{\"amount\":1e30}", HttpStatusCode.BadRequest, "malformed-json" },
        { "stake more than the balance", "operator", "POST", "/v1/account/stake", "application/json", "{\"amount\":1000000000}", HttpStatusCode.PaymentRequired, "insufficient-credits" },
        { "unstake more than the stake", "operator", "POST", "/v1/account/unstake", "application/json", "{\"amount\":1000000}", HttpStatusCode.Conflict, "insufficient-stake" },
        { "stake truncated JSON", "operator", "POST", "/v1/account/stake", "application/json", "{\"amount\":", HttpStatusCode.BadRequest, "malformed-json" },
        { "account name with a NUL", "admin", "POST", "/v1/admin/accounts", "application/json", "{\"role\":\"client\",\"name\":\"a\\u0000b\",\"credits\":1}", HttpStatusCode.BadRequest, "validation" },
        { "account credits past decimal", "admin", "POST", "/v1/admin/accounts", "application/json", "{\"role\":\"client\",\"name\":\"a\",\"credits\":1e30}", HttpStatusCode.BadRequest, "malformed-json" },
        { "account credits above 10^12", "admin", "POST", "/v1/admin/accounts", "application/json", "{\"role\":\"client\",\"name\":\"a\",\"credits\":1000000000001}", HttpStatusCode.BadRequest, "validation" },
        { "account role upper case", "admin", "POST", "/v1/admin/accounts", "application/json", "{\"role\":\"ADMIN\",\"name\":\"a\",\"credits\":1}", HttpStatusCode.BadRequest, "validation" },
        { "account name of 201 characters", "admin", "POST", "/v1/admin/accounts", "application/json", "{\"role\":\"client\",\"name\":\"NAME201\",\"credits\":1}", HttpStatusCode.BadRequest, "validation" },
        // wrong roles
        { "client stakes", "client", "POST", "/v1/account/stake", "application/json", "{\"amount\":1}", HttpStatusCode.Forbidden, "forbidden" },
        { "client unstakes", "client", "POST", "/v1/account/unstake", "application/json", "{\"amount\":1}", HttpStatusCode.Forbidden, "forbidden" },
        { "client reads earnings", "client", "GET", "/v1/account/earnings", null, null, HttpStatusCode.Forbidden, "forbidden" },
        { "operator submits a job", "operator", "POST", "/v1/jobs", "application/json", Vec + "}", HttpStatusCode.Forbidden, "forbidden" },
        { "operator lists jobs", "operator", "GET", "/v1/jobs", null, null, HttpStatusCode.Forbidden, "forbidden" },
        { "operator cancels a job", "operator", "POST", "/v1/jobs/CLIENTJOB/cancel", null, null, HttpStatusCode.Forbidden, "forbidden" },
        { "operator creates an account", "operator", "POST", "/v1/admin/accounts", "application/json", "{\"role\":\"admin\",\"name\":\"x\",\"credits\":1}", HttpStatusCode.Forbidden, "forbidden" },
        { "anonymous reads the account", "anonymous", "GET", "/v1/account", null, null, HttpStatusCode.Unauthorized, "unauthorized" },
        { "anonymous reads a ledger", "anonymous", "GET", "/v1/account/ledger", null, null, HttpStatusCode.Unauthorized, "unauthorized" },
        { "anonymous pins", "anonymous", "POST", "/v1/blobs", "application/octet-stream", "bytes", HttpStatusCode.Unauthorized, "unauthorized" },
        { "anonymous reads a blob", "anonymous", "GET", "/v1/blobs/VEC", null, null, HttpStatusCode.Unauthorized, "unauthorized" },
        { "anonymous reads a pin", "anonymous", "GET", "/v1/blobs/VEC/pin", null, null, HttpStatusCode.Unauthorized, "unauthorized" },
        { "anonymous submits a job", "anonymous", "POST", "/v1/jobs", "application/json", Vec + "}", HttpStatusCode.Unauthorized, "unauthorized" },
        { "anonymous reads a job", "anonymous", "GET", "/v1/jobs/CLIENTJOB", null, null, HttpStatusCode.Unauthorized, "unauthorized" },
        { "anonymous job events", "anonymous", "GET", "/v1/jobs/CLIENTJOB/events", null, null, HttpStatusCode.Unauthorized, "unauthorized" },
        { "anonymous creates a dataset", "anonymous", "POST", "/v1/datasets", "application/json", "{}", HttpStatusCode.Unauthorized, "unauthorized" },
        { "anonymous creates an account", "anonymous", "POST", "/v1/admin/accounts", "application/json", "{\"role\":\"admin\",\"name\":\"x\",\"credits\":1}", HttpStatusCode.Unauthorized, "unauthorized" },
        { "anonymous stakes", "anonymous", "POST", "/v1/account/stake", "application/json", "{\"amount\":1}", HttpStatusCode.Unauthorized, "unauthorized" },
        // other tenants' ids
        { "another client's job cancelled", "intruder", "POST", "/v1/jobs/CLIENTJOB/cancel", null, null, HttpStatusCode.NotFound, "job-not-found" },
        { "another client's job events", "intruder", "GET", "/v1/jobs/CLIENTJOB/events", null, null, HttpStatusCode.NotFound, "job-not-found" },
        // content types
        { "text/plain job", "client", "POST", "/v1/jobs", "text/plain", Vec + "}", HttpStatusCode.UnsupportedMediaType, "unsupported-media-type" },
        { "XML job", "client", "POST", "/v1/jobs", "application/xml", "<job/>", HttpStatusCode.UnsupportedMediaType, "unsupported-media-type" },
        { "job without a content type", "client", "POST", "/v1/jobs", null, Vec + "}", HttpStatusCode.UnsupportedMediaType, "unsupported-media-type" },
        { "text/plain dataset (refused by the route's Accepts)", "client", "POST", "/v1/datasets", "text/plain", "{\"name\":\"d\",\"license\":\"MIT\",\"blobs\":[\"VEC\"]}", HttpStatusCode.UnsupportedMediaType, "unsupported-media-type" },
        { "text/plain stake (refused by the route's Accepts)", "operator", "POST", "/v1/account/stake", "text/plain", "{\"amount\":1}", HttpStatusCode.UnsupportedMediaType, "unsupported-media-type" },
        { "text/plain unstake (refused by the route's Accepts)", "operator", "POST", "/v1/account/unstake", "text/plain", "{\"amount\":1}", HttpStatusCode.UnsupportedMediaType, "unsupported-media-type" },
        { "text/plain account", "admin", "POST", "/v1/admin/accounts", "text/plain", "{\"role\":\"client\",\"name\":\"a\",\"credits\":1}", HttpStatusCode.UnsupportedMediaType, "unsupported-media-type" },
        { "multipart job", "client", "POST", "/v1/jobs", "multipart/form-data; boundary=x", "--x--", HttpStatusCode.UnsupportedMediaType, "unsupported-media-type" },
        // unknown routes and methods
        { "PUT on jobs", "client", "PUT", "/v1/jobs", "application/json", "{}", HttpStatusCode.MethodNotAllowed, "method-not-allowed" },
        { "DELETE on a job", "client", "DELETE", "/v1/jobs/CLIENTJOB", null, null, HttpStatusCode.MethodNotAllowed, "method-not-allowed" },
        { "PATCH on a blob", "client", "PATCH", "/v1/blobs/VEC", "application/json", "{}", HttpStatusCode.MethodNotAllowed, "method-not-allowed" },
        { "GET on stake", "operator", "GET", "/v1/account/stake", null, null, HttpStatusCode.MethodNotAllowed, "method-not-allowed" },
        { "GET on admin accounts", "admin", "GET", "/v1/admin/accounts", null, null, HttpStatusCode.MethodNotAllowed, "method-not-allowed" },
        { "POST on workers", "client", "POST", "/v1/workers", "application/json", "{}", HttpStatusCode.MethodNotAllowed, "method-not-allowed" },
        { "unknown version", "client", "GET", "/v2/jobs", null, null, HttpStatusCode.NotFound, "not-found" },
        { "unknown job sub-resource", "client", "GET", "/v1/jobs/CLIENTJOB/secrets", null, null, HttpStatusCode.NotFound, "not-found" },
        { "dotfile probe", "client", "GET", "/.env", null, null, HttpStatusCode.NotFound, "not-found" },
        { "encoded traversal out of the API", "client", "GET", "/v1/%2e%2e/%2e%2e/etc/passwd", null, null, HttpStatusCode.NotFound, "not-found" },
        { "empty CID segment", "client", "GET", "/v1/blobs//pin", null, null, HttpStatusCode.NotFound, "not-found" },
    };

    [Theory]
    [MemberData(nameof(Requests))]
    public async Task Hostile_request_gets_its_problem(string what, string role, string method, string path, string? contentType, string? body,
        HttpStatusCode status, string type)
    {
        output.WriteLine(what);
        using var http = network.Client(KeyOf(role));
        // "path#Name: value" sends that header too.
        var (target, header) = path.IndexOf('#', StringComparison.Ordinal) is var hash and >= 0 ? (path[..hash], path[(hash + 1)..]) : (path, null);
        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(Expand(target), UriKind.Relative));
        if (header is not null)
            Assert.True(request.Headers.TryAddWithoutValidation(header[..header.IndexOf(':', StringComparison.Ordinal)], header[(header.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim()));
        if (body is not null)
            request.Content = Body(Expand(body), contentType);
        // The answer to an oversized body comes before the body is read; the client waits for it instead of
        // writing into a closed connection.
        request.Headers.ExpectContinue = body is not null && body.Contains("CIDS100000", StringComparison.Ordinal);

        using var response = await http.SendAsync(request);

        await AssertProblemAsync(response, status, type);
        await AssertServicesAliveAsync();
    }

    public static TheoryData<string?> PinContentTypes => new()
    {
        "application/x-www-form-urlencoded", // curl --data-binary's default
        "text/plain",
        "image/png",
        "multipart/form-data; boundary=x",
        "application/json",
        null,
    };

    [Theory]
    [MemberData(nameof(PinContentTypes))]
    public async Task A_raw_pin_takes_any_body_as_bytes_whatever_its_content_type(string? contentType)
    {
        using var http = network.Client(_client.Key);
        var bytes = Encoding.UTF8.GetBytes($"kernel=matmul&note={contentType}");
        using var content = new ByteArrayContent(bytes);
        if (contentType is not null)
            content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);

        using var response = await http.PostAsync(new Uri("/v1/blobs", UriKind.Relative), content);

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"expected 201, got {(int)response.StatusCode}: {Clip(body)}");
        var pinned = JsonSerializer.Deserialize<Pinned>(body, Api.Json)!;
        Assert.Equal(Cid.Compute(bytes).Value, pinned.Cid);
        Assert.Equal(bytes, await http.GetByteArrayAsync(new Uri($"/v1/blobs/{pinned.Cid}", UriKind.Relative)));
    }

    /// <summary>Headers a client can send through an ordinary HTTP stack: (name, value) on POST /v1/jobs.</summary>
    public static TheoryData<string, string, string, HttpStatusCode, string> Headers => new()
    {
        { "Idempotency-Key of 256 characters", "Idempotency-Key", new string('k', 256), HttpStatusCode.BadRequest, "invalid-idempotency-key" },
        { "Idempotency-Key of 10,000 characters", "Idempotency-Key", new string('k', 10_000), HttpStatusCode.BadRequest, "invalid-idempotency-key" },
        { "empty Idempotency-Key", "Idempotency-Key", "", HttpStatusCode.BadRequest, "invalid-idempotency-key" },
        { "Idempotency-Key with a space", "Idempotency-Key", "a b", HttpStatusCode.BadRequest, "invalid-idempotency-key" },
        { "Idempotency-Key with a tab", "Idempotency-Key", "a\tb", HttpStatusCode.BadRequest, "invalid-idempotency-key" },
        { "two Idempotency-Keys", "Idempotency-Key", "a|b", HttpStatusCode.BadRequest, "invalid-idempotency-key" },
        { "Authorization of 10,000 characters", "Authorization", "Bearer " + new string('k', 10_000), HttpStatusCode.Unauthorized, "unauthorized" },
        { "Authorization without a token", "Authorization", "Bearer ", HttpStatusCode.Unauthorized, "unauthorized" },
        { "Authorization with two tokens", "Authorization", "Bearer CLIENTKEY CLIENTKEY", HttpStatusCode.Unauthorized, "unauthorized" },
        { "Authorization with the key's hash", "Authorization", "Bearer 0000000000000000000000000000000000000000000000000000000000000000", HttpStatusCode.Unauthorized, "unauthorized" },
        { "Authorization with SQL", "Authorization", "Bearer ' or '1'='1", HttpStatusCode.Unauthorized, "unauthorized" },
        { "Authorization of another scheme", "Authorization", "Digest username=admin", HttpStatusCode.Unauthorized, "unauthorized" },
    };

    [Theory]
    [MemberData(nameof(Headers))]
    public async Task Hostile_header_gets_its_problem(string what, string name, string value, HttpStatusCode status, string type)
    {
        output.WriteLine(what);
        using var http = network.Client(name == "Authorization" ? null : _client.Key);
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/v1/jobs", UriKind.Relative)) { Content = Body(Expand(Vec + "}"), "application/json") };
        Assert.True(request.Headers.TryAddWithoutValidation(name, Expand(value).Split('|')));

        using var response = await http.SendAsync(request);

        await AssertProblemAsync(response, status, type);
        await AssertServicesAliveAsync();
    }

    /// <summary>
    /// Requests only a raw socket can send: CR, LF and NUL inside header values, non-ASCII bytes, oversized and
    /// contradictory framing. Kestrel refuses most before any application code runs, so there is no problem body
    /// to check, only the status, that nothing leaks, and that the gateway is still up and the caller gets no
    /// other identity. A type is given where the gateway itself answers.
    /// </summary>
    public static TheoryData<string, string, int, string?> RawRequests => new()
    {
        { "CR inside Idempotency-Key", "POST /v1/jobs HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer CLIENTKEY\r\nIdempotency-Key: a\rX-Platform-Account: OPERATORID\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 400, null },
        { "bare LF splitting Idempotency-Key", "POST /v1/jobs HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer CLIENTKEY\r\nIdempotency-Key: a\nX-Platform-Account: OPERATORID\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 400, null },
        { "CR inside Authorization", "GET /v1/account HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer CLIENTKEY\rX-Platform-Account: OPERATORID\r\n\r\n", 400, null },
        { "NUL inside Authorization", "GET /v1/account HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer CLIENTKEY\0admin\r\n\r\n", 400, null },
        { "NUL inside Idempotency-Key", "POST /v1/jobs HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer CLIENTKEY\r\nIdempotency-Key: a\0b\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 400, null },
        { "non-ASCII bytes in Idempotency-Key", "POST /v1/jobs HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer CLIENTKEY\r\nIdempotency-Key: \u00c3\u00a9t\u00c3\u00a9\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 400, null },
        { "obsolete line folding", "GET /v1/account HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer\r\n CLIENTKEY\r\n\r\n", 400, null },
        { "space in a header name", "GET /v1/account HTTP/1.1\r\nHost: h\r\nAuthorization : Bearer CLIENTKEY\r\n\r\n", 400, null },
        { "CR in the request target", "GET /v1/blobs/a\rb HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer CLIENTKEY\r\n\r\n", 400, null },
        { "64 KiB header", "GET /v1/account HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer CLIENTKEY\r\nX-Junk: JUNK64K\r\n\r\n", 431, "request-headers-too-large" },
        { "anonymous 64 KiB header", "GET /v1/account HTTP/1.1\r\nHost: h\r\nX-Junk: JUNK64K\r\n\r\n", 431, "request-headers-too-large" },
        { "256 KiB header (past the server's own limit)", "GET /v1/account HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer CLIENTKEY\r\nX-Junk: JUNK256K\r\n\r\n", 431, null },
        { "two different Content-Lengths", "POST /v1/jobs HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer CLIENTKEY\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400, null },
        { "negative Content-Length", "POST /v1/jobs HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer CLIENTKEY\r\nContent-Type: application/json\r\nContent-Length: -2\r\n\r\n{}", 400, null },
        { "Content-Length of 100 GB to a JSON endpoint", "POST /v1/jobs HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer CLIENTKEY\r\nContent-Type: application/json\r\nContent-Length: 100000000000\r\n\r\n{}", 413, "payload-too-large" },
        { "chunked JSON past 1 MiB", "POST /v1/jobs HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer CLIENTKEY\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nCHUNKED2MB", 413, "payload-too-large" },
        { "unknown transfer coding", "POST /v1/jobs HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer CLIENTKEY\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip\r\n\r\n{}", 400, null },
        { "encoded NUL in a CID", "GET /v1/blobs/bafkrei%00 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer CLIENTKEY\r\n\r\n", 400, null },
        { "encoded NUL in a job id", "GET /v1/jobs/job_%00 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer CLIENTKEY\r\n\r\n", 400, null },
        { "HTTP/0.9 style request", "GET /v1/account\r\n\r\n", 400, null },
    };

    [Theory]
    [MemberData(nameof(RawRequests))]
    public async Task Hostile_raw_request_is_refused_without_leaking(string what, string raw, int status, string? type)
    {
        output.WriteLine(what);
        var (code, contentType, body) = await RawHttp.SendAsync(network.Gateway.BaseUrl, Encoding.Latin1.GetBytes(Expand(raw)), TimeSpan.FromSeconds(30));

        Assert.True(status == code, $"expected {status}, got {code}: {Clip(body)}");
        AssertNoLeak(body);
        if (type is not null)
        {
            Assert.Equal("application/problem+json", contentType);
            using var problem = JsonDocument.Parse(body);
            Assert.Equal(Problems(type), problem.RootElement.GetProperty("type").GetString());
        }
        await AssertServicesAliveAsync();
    }

    /// <summary>.npy inputs the gateway reads the header of before accepting the job: each is a 422 input-invalid.</summary>
    public static TheoryData<string> Tensors => new()
    {
        "<f8", ">f4", "<i8", "|O object", "<U8 unicode", "fortran order", "shape (-1,)", "shape with 2^40 elements", "dimension past int",
        "nine dimensions", "shape (5) not a tuple", "header says 5000 bytes, file has 80", "header of 60000 bytes", "2.0 header of 4 GiB",
        "truncated header", "magic only", "empty file", "a PNG", "non-ASCII header", "NUL in the header", "version 3.0", "version 1.1",
        "structured dtype", "duplicate key", "extra key", "escape in a string", "unterminated string", "int32 for vector-add",
        "a scalar for vector-add", "valid header longer than 4 KiB",
    };

    [Theory]
    [MemberData(nameof(Tensors))]
    public async Task Hostile_tensor_input_gets_input_invalid(string what)
    {
        output.WriteLine(what);
        using var http = network.Client(_client.Key);
        var bad = await http.PinAsync(HostileNpy.Make(what));

        using var response = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = bad.Cid, b = _vector.Cid } });

        await AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "input-invalid");
        await AssertServicesAliveAsync();
    }

    /// <summary>Shapes with a zero-size dimension: no work, and (matmul [m,0] x [0,n]) an output of any size for it.</summary>
    public static TheoryData<string, string, int[], string, int[], string> ZeroSized => new()
    {
        { "matmul", "a", [2048, 0], "b", [0, 2048], "input 'a' float32[2048,0] has a zero-size dimension (axis 1)" },
        { "knn", "corpus", [16, 0], "queries", [4, 0], "input 'corpus' float32[16,0] has a zero-size dimension (axis 1)" },
        { "knn", "corpus", [16, 4], "queries", [0, 4], "input 'queries' float32[0,4] has a zero-size dimension (axis 0)" },
    };

    [Theory]
    [MemberData(nameof(ZeroSized))]
    public async Task A_zero_size_dimension_is_refused_at_submit_naming_it(string kernel, string first, int[] firstShape, string second, int[] secondShape, string named)
    {
        using var http = network.Client(_client.Key);
        var a = await http.PinAsync(NpyArray.FromFloat32(new float[firstShape[0] * firstShape[1]], firstShape));
        var b = await http.PinAsync(NpyArray.FromFloat32(new float[secondShape[0] * secondShape[1]], secondShape));
        var inputs = new Dictionary<string, string> { [first] = a.Cid, [second] = b.Cid };
        object body = kernel == "knn" ? new { kernel, inputs, @params = new { k = "1" } } : new { kernel, inputs };

        using var response = await http.SubmitAsync(body);

        var text = await response.Content.ReadAsStringAsync();
        await AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "input-invalid");
        Assert.Contains(named, JsonDocument.Parse(text).RootElement.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    /// <summary>Inputs whose header is fine but whose data only the worker reads: a failed job with the reason.</summary>
    public static TheoryData<string, string> WorkerJudged => new()
    {
        { "trailing bytes after the data", "input_invalid" },
        { "labels other than 0 and 1", "input_invalid" },
    };

    [Theory]
    [MemberData(nameof(WorkerJudged))]
    public async Task Input_only_a_worker_can_judge_fails_the_job_with_a_reason(string what, string reason)
    {
        output.WriteLine(what);
        using var http = network.Client(_client.Key);
        object job = what switch
        {
            "trailing bytes after the data" => new
            {
                kernel = "vector-add",
                inputs = new { a = (await http.PinAsync([.. Npy.ToBytes(NpyArray.FromFloat32([1, 2, 3, 4], 4)), .. new byte[8]])).Cid, b = _vector.Cid },
            },
            _ => new
            {
                kernel = "train-logreg",
                inputs = new { x = _points.Cid, y = (await http.PinAsync(NpyArray.FromFloat32([0, 1, 2, 0, 1, 0, 1, 7], 8))).Cid },
                @params = new { epochs = 2 },
            },
        };

        using var submitted = await http.SubmitAsync(job);
        Assert.True(submitted.StatusCode == HttpStatusCode.Accepted, await submitted.Content.ReadAsStringAsync());
        var id = (await submitted.Content.ReadFromJsonAsync<Job>(Api.Json))!.Id;
        var done = await http.WaitForAsync(id, j => j.Status is "completed" or "failed", "job finished");

        Assert.Equal("failed", done.Status);
        Assert.Equal(reason, done.Error?.Reason);
        AssertNoLeak(done.Error!.Detail);
        await AssertServicesAliveAsync();
    }

    [Fact]
    public async Task A_spoofed_account_header_changes_nobodys_identity()
    {
        using var http = network.Client(_client.Key);
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/v1/account/ledger", UriKind.Relative));
        request.Headers.Add("X-Platform-Account", _operator.AccountId);

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var page = await response.Content.ReadFromJsonAsync<JsonElement>();
        var owners = page.GetProperty("entries").EnumerateArray().Select(e => e.GetProperty("accountId").GetString()).Distinct().ToList();
        Assert.All(owners, owner => Assert.Equal(_client.AccountId, owner));
        Assert.NotEmpty(owners); // the client's grant is there, the operator's is not
        Assert.Equal(_client.AccountId, (await http.AccountAsync()).AccountId);
    }

    [Fact]
    public async Task Another_clients_jobs_are_not_listed()
    {
        using var intruder = network.Client(_intruder.Key);

        var list = await intruder.GetFromJsonAsync<JsonElement>("/v1/jobs?limit=200");

        Assert.DoesNotContain(list.GetProperty("items").EnumerateArray(), j => j.GetProperty("id").GetString() == _clientJob);
    }

    // ---- helpers -----------------------------------------------------------------------------------------------

    private string? KeyOf(string role) => role switch
    {
        "client" => _client.Key,
        "intruder" => _intruder.Key,
        "operator" => _operator.Key,
        "admin" => network.AdminKey,
        _ => null,
    };

    private static readonly string Huge = new('x', 900_000);

    private string Expand(string text)
    {
        if (text.Contains("HUGEHUGE", StringComparison.Ordinal))
            text = text.Replace("HUGEHUGE", new string('x', 2_000_000), StringComparison.Ordinal);
        if (text.Contains("HUGE", StringComparison.Ordinal) && !text.Contains("HUGETICKS", StringComparison.Ordinal))
            text = text.Replace("HUGE", Huge, StringComparison.Ordinal);
        return text
            .Replace("NESTARRAYS", new string('[', 10_000) + new string(']', 10_000), StringComparison.Ordinal)
            .Replace("NESTOBJECTS", string.Concat(Enumerable.Repeat("{\"a\":", 10_000)) + "1" + new string('}', 10_000), StringComparison.Ordinal)
            .Replace("THOUSANDINPUTS", string.Concat(Enumerable.Range(0, 1000).Select(i => $",\"x{i}\":\"VEC\"")), StringComparison.Ordinal)
            .Replace("CIDS100000", CidArray(100_000), StringComparison.Ordinal)
            .Replace("CIDS10001", CidArray(10_001), StringComparison.Ordinal)
            .Replace("NAME201", new string('n', 201), StringComparison.Ordinal)
            .Replace("DESC10001", new string('d', 10_001), StringComparison.Ordinal)
            .Replace("NULCURSOR", Base64Url($"{DateTimeOffset.UtcNow.UtcTicks}:job_\0"), StringComparison.Ordinal)
            .Replace("HUGETICKSCURSOR", Base64Url("99999999999999999999:job_x"), StringComparison.Ordinal)
            .Replace("JUNK64K", new string('j', 64 * 1024), StringComparison.Ordinal)
            .Replace("JUNK256K", new string('j', 256 * 1024), StringComparison.Ordinal)
            .Replace("CHUNKED2MB", Chunked(new string(' ', 2_000_000)), StringComparison.Ordinal)
            .Replace("LONGCID", new string('b', 5_000), StringComparison.Ordinal)
            .Replace("UPPERVEC", _vector.Cid.ToUpperInvariant(), StringComparison.Ordinal)
            .Replace("SHORTVEC", _vector.Cid[..^1], StringComparison.Ordinal)
            .Replace("VEC", _vector.Cid, StringComparison.Ordinal)
            .Replace("POINTS", _points.Cid, StringComparison.Ordinal)
            .Replace("UNPINNED", Cid.Compute("never pinned by anyone"u8).Value, StringComparison.Ordinal)
            .Replace("CLIENTJOB", _clientJob, StringComparison.Ordinal)
            .Replace("CLIENTKEY", _client.Key, StringComparison.Ordinal)
            .Replace("OPERATORID", _operator.AccountId, StringComparison.Ordinal);
    }

    private static string CidArray(int count) =>
        "[" + string.Join(",", Enumerable.Range(0, count).Select(i => $"\"{Cid.Compute(BitConverter.GetBytes(i)).Value}\"")) + "]";

    private static string Base64Url(string text) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes(text)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static string Chunked(string body) =>
        $"{Encoding.Latin1.GetByteCount(body):x}\r\n{body}\r\n0\r\n\r\n";

    private static ByteArrayContent Body(string body, string? contentType)
    {
        var bytes = body switch
        {
            _ when body.StartsWith("utf16:", StringComparison.Ordinal) => [.. Encoding.Unicode.GetPreamble(), .. Encoding.Unicode.GetBytes(body["utf16:".Length..])],
            _ when body.StartsWith("latin1:", StringComparison.Ordinal) => Encoding.Latin1.GetBytes(body["latin1:".Length..]),
            _ => Encoding.UTF8.GetBytes(body),
        };
        var content = new ByteArrayContent(bytes);
        if (contentType is not null)
            content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        return content;
    }

    private static string Problems(string type) => type switch
    {
        _ => $"urn:platform:problem:{type}",
    };

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string type)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {Clip(body)}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(body);
        Assert.Equal(Problems(type), problem.RootElement.GetProperty("type").GetString());
        Assert.Equal((int)status, problem.RootElement.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(problem.RootElement.GetProperty("title").GetString()));
        AssertNoLeak(body);
        // A hostile value is never echoed back in full.
        Assert.True(body.Length < 64 * 1024, $"a {body.Length}-character problem body");
    }

    private static void AssertNoLeak(string body)
    {
        Assert.DoesNotContain("   at ", body, StringComparison.Ordinal); // no stack trace
        foreach (var name in new[] { "Exception", "Npgsql", "System.", "Microsoft.", "Platform." })
            Assert.DoesNotContain(name, body, StringComparison.Ordinal);
    }

    private static string Clip(string s) => s.Length <= 500 ? s : s[..500] + "...";

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
}
