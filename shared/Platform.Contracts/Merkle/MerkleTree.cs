using System.Security.Cryptography;

namespace Platform.Contracts.Merkle;

/// <summary>
/// The Merkle tree over a blob's 1 MiB chunks, exactly as RFC 6962 section 2.1 defines it over SHA-256:
/// leaf = H(0x00 || chunk), node = H(0x01 || left || right), split at the largest power of two below n.
/// With it a reader can verify any range of a blob, and a store can prove it holds any chunk, without the
/// whole blob. The empty blob has no chunks and the root H().
/// </summary>
public static class MerkleTree
{
    public const int ChunkSize = 1 << 20;

    public static int ChunkCount(long size) => (int)((size + ChunkSize - 1) / ChunkSize);

    public static byte[] LeafHash(ReadOnlySpan<byte> chunk)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData([0x00]);
        hash.AppendData(chunk);
        return hash.GetHashAndReset();
    }

    public static byte[] NodeHash(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right)
    {
        Span<byte> input = stackalloc byte[65];
        input[0] = 0x01;
        left.CopyTo(input[1..]);
        right.CopyTo(input[33..]);
        return SHA256.HashData(input);
    }

    /// <summary>MTH(D[n]) over the leaf hashes.</summary>
    public static byte[] Root(IReadOnlyList<byte[]> leaves) => leaves.Count == 0 ? SHA256.HashData([]) : Subtree(leaves, 0, leaves.Count);

    /// <summary>PATH(m, D[n]): the sibling hashes from leaf <paramref name="index"/> up to the root.</summary>
    public static IReadOnlyList<byte[]> AuditPath(IReadOnlyList<byte[]> leaves, int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, leaves.Count);
        var path = new List<byte[]>();
        AuditPath(leaves, index, 0, leaves.Count, path);
        return path;
    }

    /// <summary>
    /// Checks an audit path (RFC 9162 section 2.1.3.2): true when <paramref name="leafHash"/> is leaf
    /// <paramref name="index"/> of a tree of <paramref name="count"/> leaves with the given root.
    /// </summary>
    public static bool Verify(ReadOnlySpan<byte> leafHash, long index, long count, IReadOnlyList<byte[]> path, ReadOnlySpan<byte> root)
    {
        if (index < 0 || index >= count)
            return false;
        long fn = index, sn = count - 1;
        var r = leafHash.ToArray();
        foreach (var p in path)
        {
            if (sn == 0)
                return false;
            if ((fn & 1) == 1 || fn == sn)
            {
                r = NodeHash(p, r);
                if ((fn & 1) == 0)
                {
                    while ((fn & 1) == 0 && fn != 0)
                    {
                        fn >>= 1;
                        sn >>= 1;
                    }
                }
            }
            else
            {
                r = NodeHash(r, p);
            }
            fn >>= 1;
            sn >>= 1;
        }
        return sn == 0 && r.AsSpan().SequenceEqual(root);
    }

    private static byte[] Subtree(IReadOnlyList<byte[]> leaves, int start, int count)
    {
        if (count == 1)
            return leaves[start];
        var k = LargestPowerOfTwoBelow(count);
        return NodeHash(Subtree(leaves, start, k), Subtree(leaves, start + k, count - k));
    }

    private static void AuditPath(IReadOnlyList<byte[]> leaves, int index, int start, int count, List<byte[]> path)
    {
        if (count == 1)
            return;
        var k = LargestPowerOfTwoBelow(count);
        if (index < k)
        {
            AuditPath(leaves, index, start, k, path);
            path.Add(Subtree(leaves, start + k, count - k));
        }
        else
        {
            AuditPath(leaves, index - k, start + k, count - k, path);
            path.Add(Subtree(leaves, start, k));
        }
    }

    private static int LargestPowerOfTwoBelow(int n)
    {
        var k = 1;
        while (k << 1 < n)
            k <<= 1;
        return k;
    }
}
