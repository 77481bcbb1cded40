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

        Assert.Equal(first, second);
        Assert.StartsWith("wrk_", first.WorkerId.Value, StringComparison.Ordinal);
    }

    [Fact]
    public void Separate_data_directories_make_separate_workers()
    {
        Assert.NotEqual(NodeIdentity.LoadOrCreate(Path.Combine(_dir, "a")), NodeIdentity.LoadOrCreate(Path.Combine(_dir, "b")));
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
