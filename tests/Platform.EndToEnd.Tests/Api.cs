using System.Net.Http.Json;
using System.Text.Json;
using Platform.Contracts.Tensors;
using Platform.Testing;

namespace Platform.EndToEnd.Tests;

public sealed record Pinned(string Cid, long Size, string Sha256);

public sealed record StatusReason(string Code, string Message);

public sealed record JobAttempt(string AttemptId, string WorkerId, string Status, string? Signature, float? Progress, StatusReason? StatusReason = null,
    double? Joules = null, bool? JoulesEstimated = null);

public sealed record JobEnergy(double Joules, double Gflop, double? JoulesPerGflop, bool Estimated);

public sealed record JobError(string Reason, string Detail);

public sealed record Job(string Id, string Kernel, string Status, Dictionary<string, string> Inputs, Dictionary<string, string>? Outputs,
    decimal? Cost, float? Progress, List<JobAttempt> Attempts, DateTimeOffset CreatedAt, DateTimeOffset? CompletedAt, JobError? Error,
    StatusReason? StatusReason = null, JobEnergy? Energy = null);

public sealed record AccountView(string AccountId, string Role, decimal Balance, decimal Escrowed, decimal Earned, decimal Staked);

/// <summary>The public API as a client uses it.</summary>
public static class Api
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static async Task<Pinned> PinAsync(this HttpClient http, byte[] bytes)
    {
        using var content = new ByteArrayContent(bytes);
        using var response = await http.PostAsync(new Uri("/v1/blobs", UriKind.Relative), content);
        Assert.Equal(System.Net.HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<Pinned>(Json))!;
    }

    public static Task<Pinned> PinAsync(this HttpClient http, NpyArray tensor) => http.PinAsync(Npy.ToBytes(tensor));

    public static Task<HttpResponseMessage> SubmitAsync(this HttpClient http, object body) => http.PostAsJsonAsync("/v1/jobs", body, Json);

    public static async Task<Job> GetJobAsync(this HttpClient http, string id) => (await http.GetFromJsonAsync<Job>($"/v1/jobs/{id}", Json))!;

    public static Task<Job> WaitForAsync(this HttpClient http, string id, Func<Job, bool> done, string what) =>
        Eventually.UntilAsync(() => http.GetJobAsync(id), done, TimeSpan.FromSeconds(60), what);

    public static async Task<AccountView> AccountAsync(this HttpClient http) => (await http.GetFromJsonAsync<AccountView>("/v1/account", Json))!;

    /// <summary>
    /// Pins two random vectors never seen before, adds them on the network and waits until the job has ended and been
    /// paid; fails unless it completed.
    /// </summary>
    public static async Task<Job> RunVectorAddAsync(this HttpClient http, Random random, int length)
    {
        var a = RandomFloats(random, length);
        var b = RandomFloats(random, length);
        var inputA = await http.PinAsync(NpyArray.FromFloat32(a, a.Length));
        var inputB = await http.PinAsync(NpyArray.FromFloat32(b, b.Length));
        using var submitted = await http.SubmitAsync(new { kernel = "vector-add", inputs = new { a = inputA.Cid, b = inputB.Cid } });
        if (submitted.StatusCode != System.Net.HttpStatusCode.Accepted)
            throw new InvalidOperationException($"the job was not accepted: {(int)submitted.StatusCode} {await submitted.Content.ReadAsStringAsync()}");
        var job = (await submitted.Content.ReadFromJsonAsync<Job>(Json))!;
        var done = await http.WaitForAsync(job.Id, j => j.Status is "failed" or "rejected" or "cancelled" || j.Status == "completed" && j.Cost is not null,
            "job completed and paid");
        Xunit.Assert.Equal("completed", done.Status);
        return done;
    }

    public static float[] RandomFloats(Random rng, int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
}
