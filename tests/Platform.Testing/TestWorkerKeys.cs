using System.Collections.Concurrent;
using System.Security.Cryptography;
using Platform.Contracts;
using Platform.Contracts.Messages;
using Platform.Contracts.Signing;

namespace Platform.Testing;

/// <summary>
/// Signing keys for workers that tests impersonate on the bus: <see cref="Registered"/> gives a WorkerOnline
/// the worker's public key, <see cref="Signed"/> signs a result with it, as a real worker does.
/// </summary>
public static class TestWorkerKeys
{
    private static readonly ConcurrentDictionary<WorkerId, ECDsa> Keys = new();

    public static ECDsa KeyOf(WorkerId worker) => Keys.GetOrAdd(worker, _ => ECDsa.Create(ECCurve.NamedCurves.nistP256));

    public static WorkerOnline Registered(WorkerOnline online) => online with { PublicKey = ResultSignature.ExportPublicKey(KeyOf(online.WorkerId)) };

    public static AttemptCompleted Signed(AttemptCompleted result) =>
        result with { Signature = ResultSignature.Sign(KeyOf(result.WorkerId), result.JobId, result.AttemptId, result.Outputs) };
}
