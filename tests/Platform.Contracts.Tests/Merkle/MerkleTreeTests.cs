using Platform.Contracts.Merkle;

namespace Platform.Contracts.Tests.Merkle;

public sealed class MerkleTreeTests
{
    // The Certificate Transparency project's RFC 6962 test vectors: eight leaves and the root after each.
    private static readonly string[] Leaves = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

    private static readonly string[] Roots =
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    private static List<byte[]> LeafHashes(int n) => [.. Leaves.Take(n).Select(l => MerkleTree.LeafHash(Convert.FromHexString(l)))];

    [Fact]
    public void Roots_match_the_RFC_6962_test_vectors()
    {
        for (var n = 1; n <= Leaves.Length; n++)
            Assert.Equal(Roots[n - 1], Convert.ToHexStringLower(MerkleTree.Root(LeafHashes(n))));
    }

    [Fact]
    public void The_empty_tree_is_the_hash_of_nothing()
    {
        Assert.Equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", Convert.ToHexStringLower(MerkleTree.Root([])));
    }

    [Fact]
    public void Every_audit_path_verifies_and_a_tampered_leaf_or_path_does_not()
    {
        for (var n = 1; n <= 40; n++)
        {
            var leaves = Enumerable.Range(0, n).Select(i => MerkleTree.LeafHash(BitConverter.GetBytes(i))).ToList();
            var root = MerkleTree.Root(leaves);
            for (var i = 0; i < n; i++)
            {
                var path = MerkleTree.AuditPath(leaves, i);

                Assert.True(MerkleTree.Verify(leaves[i], i, n, path, root), $"leaf {i} of {n}");
                Assert.False(MerkleTree.Verify(MerkleTree.LeafHash([1, 2, 3]), i, n, path, root));
                if (path.Count > 0)
                {
                    var tampered = path.Select(p => (byte[])p.Clone()).ToList();
                    tampered[^1][0] ^= 1;
                    Assert.False(MerkleTree.Verify(leaves[i], i, n, tampered, root));
                }
            }
        }
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 1)]
    [InlineData(1 << 20, 1)]
    [InlineData((1 << 20) + 1, 2)]
    [InlineData(3L << 30, 3072)]
    public void Chunk_count_rounds_up_to_whole_mebibytes(long size, int chunks)
    {
        Assert.Equal(chunks, MerkleTree.ChunkCount(size));
    }
}
