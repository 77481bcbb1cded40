namespace Platform.Cli.Tests;

/// <summary>`jobs receipt` right after a job completes: the receipt waits for the payment, and the command waits with it.</summary>
public sealed class ReceiptFetchTests : IDisposable
{
    private const string Pending = """
        {"type":"urn:platform:problem:receipt-pending","title":"Receipt not ready","status":409,"detail":"the job's payment is being settled; retry in a moment"}
        """;

    private const string Receipt = "{\n  \"receipt\": {}\n}\n";

    private readonly DirectoryInfo _home = Directory.CreateTempSubdirectory("platform-cli-receipt-");
    private readonly CannedGateway _gateway = new(new Dictionary<string, IReadOnlyList<CannedAnswer>>
    {
        ["/v1/jobs/job_r/receipt"] = [CannedAnswer.Problem(409, Pending), CannedAnswer.Problem(409, Pending), CannedAnswer.Json(Receipt)],
    });

    public void Dispose()
    {
        _gateway.Dispose();
        _home.Delete(recursive: true);
    }

    [Fact]
    public async Task A_receipt_pending_settlement_is_fetched_once_it_is_ready_byte_for_byte()
    {
        var file = Path.Combine(_home.FullName, "receipt.json");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var env = new Dictionary<string, string?> { ["PLATFORM_URL"] = _gateway.Url, ["PLATFORM_KEY"] = "pk_test", ["HOME"] = _home.FullName };

        var code = await Cli.RunAsync(["jobs", "receipt", "job_r", "-o", file], CliHost.Plain(stdout, stderr, env));

        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Equal(Receipt, await File.ReadAllTextAsync(file));
    }
}
