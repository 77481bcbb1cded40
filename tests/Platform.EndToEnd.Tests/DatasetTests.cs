using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.Contracts;
using Xunit.Abstractions;

namespace Platform.EndToEnd.Tests;

/// <summary>A training set with one citable, verifiable id: its manifest, pinned as a blob.</summary>
public sealed class DatasetTests(Network network, ITestOutputHelper output) : IClassFixture<Network>
{
    [Fact]
    public async Task A_dataset_is_a_pinned_manifest_whose_CID_names_its_blobs()
    {
        const int seed = 7;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var client = await network.CreateAccountAsync("client", 10m);
        using var http = network.Client(client.Key);
        var first = new byte[3000];
        var second = new byte[5000];
        random.NextBytes(first);
        random.NextBytes(second);
        var a = await http.PinAsync(first);
        var b = await http.PinAsync(second);
        var body = new { name = "tiny corpus", description = "two random blobs", license = "CC-BY-4.0", blobs = new[] { a.Cid, b.Cid, a.Cid } };

        using var created = await http.PostAsJsonAsync("/v1/datasets", body);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var dataset = await created.Content.ReadFromJsonAsync<JsonElement>();
        var cid = dataset.GetProperty("cid").GetString()!;
        Assert.Equal($"/v1/datasets/{cid}", created.Headers.Location?.OriginalString);

        var fetched = await http.GetFromJsonAsync<JsonElement>($"/v1/datasets/{cid}");
        var manifest = fetched.GetProperty("manifest");
        Assert.Equal("platform.dataset/v1", manifest.GetProperty("type").GetString());
        Assert.Equal("CC-BY-4.0", manifest.GetProperty("license").GetString());
        Assert.Equal([a.Cid, b.Cid], manifest.GetProperty("blobs").EnumerateArray().Select(x => x.GetProperty("cid").GetString()));
        Assert.Equal(8000, manifest.GetProperty("totalSize").GetInt64());
        Assert.Equal(client.AccountId, fetched.GetProperty("owner").GetString());
        Assert.Equal(client.AccountId, (await http.GetFromJsonAsync<JsonElement>($"/v1/blobs/{a.Cid}/pin")).GetProperty("owner").GetString());
        // Another account reads the dataset and its pins, but not whose they are.
        using (var stranger = network.Client((await network.CreateAccountAsync("client", 1m)).Key))
        {
            foreach (var path in new[] { $"/v1/datasets/{cid}", $"/v1/blobs/{a.Cid}/pin", $"/v1/blobs/{cid}/pin" })
            {
                var seen = await stranger.GetFromJsonAsync<JsonElement>(path);
                Assert.True(!seen.TryGetProperty("owner", out var owner) || owner.ValueKind == JsonValueKind.Null, $"{path} names its owner to another account: {seen}");
            }
        }
        // The manifest is an ordinary verified blob: anyone can fetch it and check it against the dataset's CID.
        var manifestBytes = await http.GetByteArrayAsync($"/v1/blobs/{cid}");
        Assert.Equal(cid, Cid.Compute(manifestBytes).Value);
        Assert.Equal(a.Cid, JsonDocument.Parse(manifestBytes).RootElement.GetProperty("blobs")[0].GetProperty("cid").GetString());

        using var again = await http.PostAsJsonAsync("/v1/datasets", body);
        Assert.Equal(cid, (await again.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("cid").GetString());
    }

    [Theory]
    [InlineData("{\"name\":\"\",\"license\":\"MIT\",\"blobs\":[\"CID\"]}", HttpStatusCode.BadRequest, "validation")]
    [InlineData("{\"name\":\"x\",\"license\":\"MIT\",\"blobs\":[]}", HttpStatusCode.BadRequest, "validation")]
    [InlineData("{\"name\":\"x\",\"blobs\":[\"CID\"]}", HttpStatusCode.BadRequest, "validation")]
    [InlineData("{\"name\":\"x\",\"license\":\"MIT\",\"blobs\":[\"../../etc/passwd\"]}", HttpStatusCode.BadRequest, "validation")]
    [InlineData("{\"name\":\"x\",\"license\":\"MIT\",\"blobs\":[\"bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]}", HttpStatusCode.UnprocessableEntity, "blob-not-found")]
    [InlineData("{\"name\":", HttpStatusCode.BadRequest, "malformed-json")]
    public async Task Invalid_datasets_get_a_problem(string json, HttpStatusCode status, string problem)
    {
        var client = await network.CreateAccountAsync("client", 1m);
        using var http = network.Client(client.Key);
        var pinned = await http.PinAsync("dataset member"u8.ToArray());
        using var content = new StringContent(json.Replace("\"CID\"", $"\"{pinned.Cid}\"", StringComparison.Ordinal), System.Text.Encoding.UTF8, "application/json");

        using var response = await http.PostAsync(new Uri("/v1/datasets", UriKind.Relative), content);

        Assert.Equal(status, response.StatusCode);
        Assert.Equal($"urn:platform:problem:{problem}", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("type").GetString());
    }

    [Theory]
    [InlineData("not-a-cid", HttpStatusCode.BadRequest)]
    [InlineData("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", HttpStatusCode.NotFound)]
    public async Task Unknown_or_malformed_dataset_ids_get_a_problem(string cid, HttpStatusCode status)
    {
        var client = await network.CreateAccountAsync("client", 0m);
        using var http = network.Client(client.Key);

        using var response = await http.GetAsync(new Uri($"/v1/datasets/{cid}", UriKind.Relative));

        Assert.Equal(status, response.StatusCode);
    }
}
