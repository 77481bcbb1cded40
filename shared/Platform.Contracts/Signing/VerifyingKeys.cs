using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Platform.Contracts.Signing;

/// <summary>
/// Checks ECDSA P-256 signatures by nodes' public keys without importing the key on every check: importing and
/// validating a SubjectPublicKeyInfo costs about twice the verification itself, and a node signs every message it
/// sends. A key is cached by its exact text, so a different (forged) text is a different entry and is imported and
/// validated as before. ECDsa instances are not documented as safe for concurrent use, so each key keeps a few
/// instances that are lent to one caller at a time.
/// </summary>
public static class VerifyingKeys
{
    private const int MaxKeys = 4096;
    private const int InstancesPerKey = 4;
    private static readonly ConcurrentDictionary<string, ConcurrentBag<ECDsa>> Cache = new(StringComparer.Ordinal);

    /// <summary>False for a key that is not a P-256 public key, and for a wrong signature.</summary>
    public static bool VerifyData(string publicKey, byte[] payload, byte[] signature)
    {
        var key = Rent(publicKey);
        if (key is null)
            return false;
        try
        {
            return key.VerifyData(payload, signature, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        }
        finally
        {
            Return(publicKey, key);
        }
    }

    private static ECDsa? Rent(string publicKey)
    {
        if (Cache.TryGetValue(publicKey, out var lent) && lent.TryTake(out var key))
            return key;
        // Only valid keys are cached: a refused text is imported (and refused) again on every check.
        return ResultSignature.ImportPublicKey(publicKey);
    }

    private static void Return(string publicKey, ECDsa key)
    {
        if (Cache.Count >= MaxKeys && !Cache.ContainsKey(publicKey))
        {
            // More distinct keys than a network has nodes: start again rather than grow without bound.
            foreach (var entry in Cache.Values)
                while (entry.TryTake(out var old))
                    old.Dispose();
            Cache.Clear();
        }
        var bag = Cache.GetOrAdd(publicKey, _ => []);
        if (bag.Count < InstancesPerKey)
            bag.Add(key);
        else
            key.Dispose();
    }
}
