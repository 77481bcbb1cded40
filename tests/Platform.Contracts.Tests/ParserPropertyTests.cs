using System.Text;
using FsCheck;
using FsCheck.Fluent;
using Microsoft.FSharp.Core;
using Platform.Contracts.Tensors;
using Xunit.Abstractions;

namespace Platform.Contracts.Tests;

/// <summary>
/// Property-based fuzzing of the parsers hostile input reaches first: any string as a CID, any bytes and any
/// mutation of a valid file as .npy. A parser may refuse, cleanly; it never throws anything else, never accepts a
/// non-canonical form, and never allocates more than its input can fill.
/// </summary>
public sealed class ParserPropertyTests(ITestOutputHelper output)
{
    // Fixed, so a failure replays exactly; FsCheck prints it again with any counterexample.
    private const ulong Seed = 20261127;
    private const ulong Gamma = 1442695040888963407;

    private Config Seeded(int tests)
    {
        output.WriteLine($"FsCheck seed {Seed}, gamma {Gamma}, {tests} tests");
        return Config.QuickThrowOnFailure.WithMaxTest(tests)
            .WithReplay(FSharpOption<Replay>.Some(new Replay(new Rnd(Seed, Gamma), FSharpOption<int>.None)));
    }

    private static readonly string CidAlphabet = "abcdefghijklmnopqrstuvwxyz234567";

    // Strings near the CID form (the right length and prefix, base32 letters) as well as anything at all.
    private static Gen<string> CidLike() => Gen.OneOf(
        ArbMap.Default.GeneratorFor<string>().Select(s => s ?? ""),
        Gen.Elements([.. CidAlphabet + "ABZ019=+/%.\0\u00fc"]).ArrayOf(58).Select(c => "b" + new string(c)),
        Gen.Elements([.. CidAlphabet]).ArrayOf(58).Select(c => "b" + new string(c)),
        Gen.Elements([.. CidAlphabet]).ArrayOf().Select(c => "bafkrei" + new string(c)));

    /// <summary>
    /// What a CID string names, worked out apart from <see cref="Cid"/>'s decoder (bit by bit): the 32-byte digest, or
    /// null when the string is not the one canonical form (wrong length or multibase, a letter outside the alphabet,
    /// another codec or hash, non-zero unused bits).
    /// </summary>
    private static byte[]? ReferenceDigest(string s)
    {
        if (s.Length != 59 || s[0] != 'b')
            return null;
        var bits = new StringBuilder();
        foreach (var c in s[1..])
        {
            var v = CidAlphabet.IndexOf(c, StringComparison.Ordinal);
            if (v < 0)
                return null;
            bits.Append(Convert.ToString(v, 2).PadLeft(5, '0'));
        }
        if (bits.ToString(288, 2) != "00")
            return null;
        var bytes = Enumerable.Range(0, 36).Select(i => Convert.ToByte(bits.ToString(i * 8, 8), 2)).ToArray();
        return bytes[..4].SequenceEqual(new byte[] { 0x01, 0x55, 0x12, 0x20 }) ? bytes[4..] : null;
    }

    /// <summary>TryParse and Parse (both overloads) give the same answer, and the one the reference gives.</summary>
    private static Cid? ParsedAlike(string s)
    {
        var ok = Cid.TryParse(s, out var tried);
        Assert.Equal(ok, Cid.TryParse(s, null, out var triedWithProvider));
        Assert.Equal(tried, triedWithProvider);
        Cid? parsed;
        try
        {
            parsed = Cid.Parse(s);
        }
        catch (FormatException)
        {
            parsed = null;
        }
        Assert.True(ok == parsed.HasValue, $"TryParse says {ok}, Parse {(parsed.HasValue ? "accepts" : "refuses")} '{s}'");
        var expected = ReferenceDigest(s);
        Assert.True(ok == expected is not null, $"TryParse says {ok}, the reference {(expected is null ? "refuses" : "accepts")} '{s}'");
        if (!ok)
            return null;
        Assert.Equal(tried, parsed!.Value);
        Assert.Equal(s, tried.Value);
        Assert.Equal(expected, tried.Sha256());
        return tried;
    }

    [Fact]
    public void Any_string_parses_to_a_canonical_cid_or_is_refused_cleanly()
    {
        var accepted = 0;
        Check.One(Seeded(5000), Prop.ForAll(Arb.From(CidLike()), s =>
        {
            if (ParsedAlike(s) is { } cid)
            {
                accepted++;
                // Accepted means canonical: the same string again from its digest.
                Assert.Equal(s, Cid.FromSha256(cid.Sha256()).Value);
            }
        }));
        output.WriteLine($"{accepted} accepted");
        Assert.True(accepted > 0, "no generated string was a CID: the accepting path went untested");
    }

    [Fact]
    public void Every_computed_cid_round_trips_and_any_byte_flip_is_refused_or_names_exactly_the_flipped_bits()
    {
        var cases = from data in ArbMap.Default.GeneratorFor<byte[]>()
                    from position in Gen.Choose(0, 58)
                    from replacement in Gen.OneOf(Gen.Choose(0, 255).Select(i => (char)i), Gen.Elements([.. CidAlphabet]))
                    select (data, position, replacement);
        int same = 0, other = 0, refused = 0;
        Check.One(Seeded(3000), Prop.ForAll(Arb.From(cases), c =>
        {
            var cid = Cid.Compute(c.data);
            Assert.Equal(cid, Cid.Parse(cid.Value));
            Assert.Equal(System.Security.Cryptography.SHA256.HashData(c.data), cid.Sha256());
            Assert.Equal(cid.Value, Cid.FromSha256(cid.Sha256()).Value);
            var chars = cid.Value.ToCharArray();
            chars[c.position] = c.replacement;
            var flipped = new string(chars);
            // ParsedAlike checks an accepted flip names exactly the digest its bits spell, not merely some valid CID.
            var parsed = ParsedAlike(flipped);
            if (parsed is null)
                refused++;
            else if (flipped == cid.Value)
            {
                Assert.Equal(cid, parsed);
                same++;
            }
            else
            {
                Assert.NotEqual(cid, parsed);
                Assert.NotEqual(cid.Sha256(), parsed.Value.Sha256());
                other++;
            }
        }));
        output.WriteLine($"{same} unchanged, {other} other CIDs, {refused} refused");
        Assert.True(same > 0 && other > 0 && refused > 0, $"{same} unchanged, {other} other CIDs, {refused} refused: a path went untested");
    }

    private static byte[] ValidNpy(int[] shape, bool int32)
    {
        var count = shape.Aggregate(1, (a, d) => a * d);
        return Npy.ToBytes(int32 ? NpyArray.FromInt32(new int[count], shape) : NpyArray.FromFloat32(new float[count], shape));
    }

    private static Gen<byte[]> NpyFiles()
    {
        var valid = from rank in Gen.Choose(0, 3)
                    from dims in Gen.Choose(0, 5).ArrayOf(rank)
                    from int32 in ArbMap.Default.GeneratorFor<bool>()
                    select ValidNpy(dims, int32);
        var mutated = from file in valid
                      from flips in Gen.Choose(1, 6)
                      from positions in Gen.Choose(0, 10_000).ArrayOf(flips)
                      from values in Gen.Choose(0, 255).ArrayOf(flips)
                      from cut in Gen.Choose(-1, 400)
                      select Mutate(file, positions, values, cut);
        var headerText = from text in Gen.Elements([.. "{}()[]',:- 0123456789<>fi4TrueFalsedescrshapefortran_order\n\0\u00e9"]).ArrayOf()
                         select Preamble(new string(text));
        return Gen.Frequency(
            (1, valid),
            (4, mutated),
            (2, headerText),
            (1, ArbMap.Default.GeneratorFor<byte[]>()));
    }

    private static byte[] Mutate(byte[] file, int[] positions, int[] values, int cut)
    {
        var copy = (byte[])file.Clone();
        for (var i = 0; i < positions.Length; i++)
            copy[positions[i] % copy.Length] = (byte)values[i];
        return cut >= 0 && cut < copy.Length ? copy[..cut] : copy;
    }

    private static byte[] Preamble(string dict)
    {
        var header = Encoding.Latin1.GetBytes(dict + "\n");
        return [0x93, .. "NUMPY"u8.ToArray(), 1, 0, (byte)header.Length, (byte)(header.Length >> 8), .. header];
    }

    [Fact]
    public void Any_bytes_read_as_a_consistent_tensor_or_an_NpyFormatException()
    {
        Check.One(Seeded(4000), Prop.ForAll(Arb.From(NpyFiles()), bytes =>
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            NpyHeader? header = null;
            try
            {
                header = Npy.ReadHeader(new MemoryStream(bytes));
                Assert.True(header.Shape.All(d => d >= 0));
                Assert.True(header.ElementCount <= Npy.MaxElements);
                Assert.True(header.DataOffset <= bytes.Length);
            }
            catch (NpyFormatException)
            {
            }
            Assert.Equal(header is not null, Npy.TryReadHeader(bytes, out var fromSpan, out var error));
            Assert.Equal(header is null, error.Length > 0);
            if (header is not null)
                Assert.Equal(header.Shape, fromSpan!.Shape);

            foreach (var read in new Func<NpyArray>[] { () => Npy.Read(bytes), () => Npy.Read(new MemoryStream(bytes)) })
            {
                try
                {
                    var array = read();
                    Assert.NotNull(header);
                    Assert.Equal(header.Shape, array.Shape);
                    Assert.Equal(bytes.Length, header.DataOffset + header.DataLength);
                }
                catch (NpyFormatException)
                {
                }
            }
            // Nothing sized by what the header claims: a few copies of the input and the 1 MiB header cap at most.
            Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < (16L * bytes.Length) + (4L << 20),
                $"{GC.GetAllocatedBytesForCurrentThread() - before} bytes allocated reading {bytes.Length}");
        }));
    }
}
