using System.Security.Cryptography;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Contracts.Signing;

namespace Platform.Worker.Node;

/// <summary>
/// The node's stable id and its ECDSA P-256 signing key, created on first start and kept in the data
/// directory, so a restarted worker keeps its queue (worker-{id}), its history and the key the scheduler
/// registered for it. Every result is signed with the key; the scheduler accepts results only under the key
/// it first saw for this id, so losing the data directory means joining as a new worker.
/// </summary>
public sealed class NodeIdentity(WorkerId workerId, ECDsa key, int slots = 1)
{
    public WorkerId WorkerId { get; } = workerId;
    public int Slots { get; } = slots;

    /// <summary>SubjectPublicKeyInfo, base64, as sent in WorkerOnline.</summary>
    public string PublicKey { get; } = ResultSignature.ExportPublicKey(key);

    public string Sign(JobId jobId, AttemptId attemptId, IReadOnlyDictionary<string, Cid> outputs) =>
        ResultSignature.Sign(key, jobId, attemptId, outputs);

    // Every other message the node sends carries a signature too (WorkerMessageSignature): the scheduler drops
    // what its registered key does not verify, and WorkerOnline proves the node holds the key it announces.
    public WorkerOnline Signed(WorkerOnline m) => m with { Signature = WorkerMessageSignature.Sign(key, WorkerMessageSignature.Payload(m)) };

    public WorkerHeartbeat Signed(WorkerHeartbeat m) => m with { Signature = WorkerMessageSignature.Sign(key, WorkerMessageSignature.Payload(m)) };

    public WorkerOffline Signed(WorkerOffline m) => m with { Signature = WorkerMessageSignature.Sign(key, WorkerMessageSignature.Payload(m)) };

    public AttemptStarted Signed(AttemptStarted m) => m with { Signature = WorkerMessageSignature.Sign(key, WorkerMessageSignature.Payload(m)) };

    public AttemptProgressed Signed(AttemptProgressed m) => m with { Signature = WorkerMessageSignature.Sign(key, WorkerMessageSignature.Payload(m)) };

    public AttemptFailed Signed(AttemptFailed m) => m with { Signature = WorkerMessageSignature.Sign(key, WorkerMessageSignature.Payload(m)) };

    /// <summary>Proof that this node holds the key it enrolls under its operator (<see cref="NodeEnrollmentSignature"/>).</summary>
    public string SignEnrollment() => WorkerMessageSignature.Sign(key, NodeEnrollmentSignature.Payload(WorkerId.Value, PublicKey));

    public static NodeIdentity LoadOrCreate(string dataDirectory, int slots = 1)
    {
        Directory.CreateDirectory(dataDirectory);
        var idPath = Path.Combine(dataDirectory, "worker-id");
        var keyPath = Path.Combine(dataDirectory, "identity.pem");
        var key = LoadOrCreateKey(keyPath);
        if (File.Exists(idPath) && WorkerId.TryParse(File.ReadAllText(idPath).Trim(), null, out var existing))
            return new NodeIdentity(existing, key, slots);
        var id = WorkerId.New();
        File.WriteAllText(idPath, id.Value);
        return new NodeIdentity(id, key, slots);
    }

    private static ECDsa LoadOrCreateKey(string path)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        if (File.Exists(path))
        {
            key.ImportFromPem(File.ReadAllText(path));
            return key;
        }
        // Written to a temporary file readable by the owner only, then moved: a crash never leaves half a key.
        var temporary = path + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var file = new StreamWriter(temporary, System.Text.Encoding.ASCII, options))
            file.Write(key.ExportPkcs8PrivateKeyPem());
        File.Move(temporary, path, overwrite: true);
        return key;
    }
}
