using Platform.Contracts;

namespace Platform.Worker.Node;

/// <summary>
/// The node's stable id, created on first start and kept in the data directory, so a restarted worker
/// keeps its queue (worker-{id}) and its history.
/// </summary>
public sealed record NodeIdentity(WorkerId WorkerId, int Slots = 1)
{
    public static NodeIdentity LoadOrCreate(string dataDirectory, int slots = 1)
    {
        Directory.CreateDirectory(dataDirectory);
        var path = Path.Combine(dataDirectory, "worker-id");
        if (File.Exists(path) && WorkerId.TryParse(File.ReadAllText(path).Trim(), null, out var existing))
            return new NodeIdentity(existing, slots);
        var id = WorkerId.New();
        File.WriteAllText(path, id.Value);
        return new NodeIdentity(id, slots);
    }
}
