using System.Collections.Concurrent;
using System.Security.Cryptography;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Contracts.Signing;

namespace Platform.Testing;

/// <summary>
/// Signing keys for workers that tests impersonate on the bus: <see cref="Registered"/> gives a WorkerOnline
/// the worker's public key and signs it with that key (proof of possession), the <c>Signed</c> overloads sign a
/// result or any other worker message with it, as a real worker does.
/// </summary>
public static class TestWorkerKeys
{
    private static readonly ConcurrentDictionary<WorkerId, ECDsa> Keys = new();

    public static ECDsa KeyOf(WorkerId worker) => Keys.GetOrAdd(worker, _ => ECDsa.Create(ECCurve.NamedCurves.nistP256));

    public static WorkerOnline Registered(WorkerOnline online) => SignedWith(KeyOf(online.WorkerId), online);

    /// <summary>The announcement of <paramref name="key"/>'s public half, signed by it.</summary>
    public static WorkerOnline SignedWith(ECDsa key, WorkerOnline online)
    {
        var announced = online with { PublicKey = ResultSignature.ExportPublicKey(key) };
        return announced with { Signature = WorkerMessageSignature.Sign(key, WorkerMessageSignature.Payload(announced)) };
    }

    public static AttemptCompleted Signed(AttemptCompleted result) =>
        result with { Signature = ResultSignature.Sign(KeyOf(result.WorkerId), result.JobId, result.AttemptId, result.Outputs) };

    public static WorkerHeartbeat Signed(WorkerHeartbeat m) => m with { Signature = WorkerMessageSignature.Sign(KeyOf(m.WorkerId), WorkerMessageSignature.Payload(m)) };

    public static WorkerOffline Signed(WorkerOffline m) => m with { Signature = WorkerMessageSignature.Sign(KeyOf(m.WorkerId), WorkerMessageSignature.Payload(m)) };

    public static AttemptStarted Signed(AttemptStarted m) => m with { Signature = WorkerMessageSignature.Sign(KeyOf(m.WorkerId), WorkerMessageSignature.Payload(m)) };

    public static AttemptProgressed Signed(AttemptProgressed m) => m with { Signature = WorkerMessageSignature.Sign(KeyOf(m.WorkerId), WorkerMessageSignature.Payload(m)) };

    public static AttemptFailed Signed(AttemptFailed m) => m with { Signature = WorkerMessageSignature.Sign(KeyOf(m.WorkerId), WorkerMessageSignature.Payload(m)) };
}
