using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Platform.Contracts;

/// <summary>
/// A content id: CIDv1, codec raw, multihash sha2-256, multibase base32 lower without padding
/// (DESIGN.md section 5). Exactly one string form is accepted, so equal bytes always give equal
/// strings and a CID can be compared, cached and used as an ETag as plain text.
/// </summary>
[JsonConverter(typeof(CidJsonConverter))]
public readonly record struct Cid : IParsable<Cid>
{
    // CIDv1, raw codec, sha2-256 multihash code, digest length 32.
    private static readonly byte[] Prefix = [0x01, 0x55, 0x12, 0x20];
    private const int DigestLength = 32;
    private const int BinaryLength = 36; // prefix + digest
    private const int StringLength = 59; // 'b' + ceil(36 * 8 / 5)
    private const string Alphabet = "abcdefghijklmnopqrstuvwxyz234567";

    private Cid(string value) => Value = value;

    /// <summary>The canonical string, e.g. "bafkrei...". Null only for <c>default(Cid)</c>.</summary>
    public string Value { get; }

    public override string ToString() => Value;

    public static Cid Compute(ReadOnlySpan<byte> data)
    {
        Span<byte> digest = stackalloc byte[DigestLength];
        SHA256.HashData(data, digest);
        return FromSha256(digest);
    }

    public static Cid FromSha256(ReadOnlySpan<byte> digest)
    {
        if (digest.Length != DigestLength)
        {
            throw new ArgumentException($"a sha2-256 digest is {DigestLength} bytes, got {digest.Length}", nameof(digest));
        }

        Span<byte> binary = stackalloc byte[BinaryLength];
        Prefix.CopyTo(binary);
        digest.CopyTo(binary[Prefix.Length..]);
        return new Cid(Encode(binary));
    }

    /// <summary>The 32-byte sha2-256 digest of the blob.</summary>
    public byte[] Sha256()
    {
        if (Value is null)
        {
            throw new InvalidOperationException("default(Cid) has no digest");
        }

        Span<byte> binary = stackalloc byte[BinaryLength];
        TryDecode(Value, binary);
        return binary[Prefix.Length..].ToArray();
    }

    public string Sha256Hex => Convert.ToHexStringLower(Sha256());

    public static Cid Parse(string s, IFormatProvider? provider = null)
    {
        if (TryParse(s, provider, out var cid))
        {
            return cid;
        }

        throw new FormatException(
            $"'{Shorten(s)}' is not a valid CID: expected a CIDv1 raw sha2-256 in lower-case base32 without padding ('bafkrei...', {StringLength} characters)");
    }

    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out Cid result) =>
        TryParse(s, out result);

    public static bool TryParse([NotNullWhen(true)] string? s, out Cid result)
    {
        result = default;
        Span<byte> binary = stackalloc byte[BinaryLength];
        if (s is null || !TryDecode(s, binary) || !binary[..Prefix.Length].SequenceEqual(Prefix))
        {
            return false;
        }

        result = new Cid(s);
        return true;
    }

    // Decodes "b" + 58 base32 characters into 36 bytes. Rejects anything that would not re-encode to
    // the same string: wrong length, other characters (upper case, '=', digits 0/1/8/9) and non-zero
    // unused bits in the last character.
    private static bool TryDecode(string s, Span<byte> binary)
    {
        if (s.Length != StringLength || s[0] != 'b')
        {
            return false;
        }

        int buffer = 0, bits = 0, written = 0;
        for (var i = 1; i < s.Length; i++)
        {
            var v = Alphabet.IndexOf(s[i], StringComparison.Ordinal);
            if (v < 0)
            {
                return false;
            }

            buffer = (buffer << 5) | v;
            bits += 5;
            if (bits >= 8)
            {
                bits -= 8;
                binary[written++] = (byte)(buffer >> bits);
                buffer &= (1 << bits) - 1;
            }
        }

        // 58 * 5 = 290 bits: 288 are data, the 2 left over must be zero to be canonical.
        return written == BinaryLength && buffer == 0;
    }

    private static string Encode(ReadOnlySpan<byte> binary)
    {
        Span<char> chars = stackalloc char[StringLength];
        chars[0] = 'b';
        int buffer = 0, bits = 0, n = 1;
        foreach (var b in binary)
        {
            buffer = (buffer << 8) | b;
            bits += 8;
            while (bits >= 5)
            {
                bits -= 5;
                chars[n++] = Alphabet[(buffer >> bits) & 31];
            }

            buffer &= (1 << bits) - 1;
        }

        if (bits > 0)
        {
            chars[n++] = Alphabet[(buffer << (5 - bits)) & 31];
        }

        return new string(chars[..n]);
    }

    // Keep error messages readable when someone posts a megabyte as a CID.
    internal static string Shorten(string? s) => s is null ? "(null)" : s.Length <= 80 ? s : s[..80] + "...";
}

/// <summary>Reads and writes a <see cref="Cid"/> as its plain string.</summary>
public sealed class CidJsonConverter : JsonConverter<Cid>
{
    public override Cid Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String)
        {
            throw new JsonException($"a CID must be a JSON string, got {reader.TokenType}");
        }

        var s = reader.GetString();
        return Cid.TryParse(s, out var cid)
            ? cid
            : throw new JsonException($"'{Cid.Shorten(s)}' is not a valid CID (expected CIDv1 raw sha2-256 base32, 'bafkrei...')");
    }

    public override void Write(Utf8JsonWriter writer, Cid value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.Value);
}
