using Platform.Contracts;
using Platform.Contracts.Signing;
using Platform.Worker.Node;

namespace Platform.Worker.Tests.Node;

public sealed class NodeIdentityTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "platform-node-" + Guid.NewGuid().ToString("n"));

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Worker_keeps_its_id_across_restarts()
    {
        var first = NodeIdentity.LoadOrCreate(_dir);

        var second = NodeIdentity.LoadOrCreate(_dir);

        Assert.Equal(first.WorkerId, second.WorkerId);
        Assert.Equal(first.PublicKey, second.PublicKey);
        Assert.StartsWith("wrk_", first.WorkerId.Value, StringComparison.Ordinal);
    }

    [Fact]
    public void Results_are_signed_with_the_key_kept_only_for_the_owner()
    {
        var identity = NodeIdentity.LoadOrCreate(_dir);
        var job = JobId.New();
        var attempt = AttemptId.New();
        var outputs = new Dictionary<string, Cid> { ["c"] = Cid.Compute("c"u8) };

        var restarted = NodeIdentity.LoadOrCreate(_dir);

        Assert.True(ResultSignature.Verify(identity.PublicKey, restarted.Sign(job, attempt, outputs), job, attempt, outputs));
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_dir, "identity.pem")));
    }

    [Fact]
    public void Separate_data_directories_make_separate_workers()
    {
        var a = NodeIdentity.LoadOrCreate(Path.Combine(_dir, "a"));
        var b = NodeIdentity.LoadOrCreate(Path.Combine(_dir, "b"));
        Assert.NotEqual(a.WorkerId, b.WorkerId);
        Assert.NotEqual(a.PublicKey, b.PublicKey);
    }

    [Fact]
    public void A_damaged_id_file_is_replaced_by_a_new_identity()
    {
        Directory.CreateDirectory(_dir);
        File.WriteAllText(Path.Combine(_dir, "worker-id"), "../../not-an-id");

        var identity = NodeIdentity.LoadOrCreate(_dir);

        Assert.StartsWith("wrk_", identity.WorkerId.Value, StringComparison.Ordinal);
    }
}
