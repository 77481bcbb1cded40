using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Platform.Contracts.Tests;

public class CidTests
{
    private const string EmptyBlobCid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

    // python3 -c "import base64, hashlib; print('b' + base64.b32encode(bytes([1, 0x55, 0x12, 0x20])
    //   + hashlib.sha256(b'hello').digest()).decode().lower().rstrip('='))"
    private const string HelloCid = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq";
    private const string HelloSha256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    [Fact]
    public void Empty_blob_has_the_design_cid()
    {
        Assert.Equal(EmptyBlobCid, Cid.Compute([]).Value);
    }

    [Fact]
    public void Hello_matches_a_cid_computed_independently_with_python()
    {
        var cid = Cid.Compute("hello"u8);

        Assert.Equal(HelloCid, cid.Value);
        Assert.Equal(HelloCid, cid.ToString());
        Assert.Equal(HelloSha256, cid.Sha256Hex);
        Assert.Equal(Convert.FromHexString(HelloSha256), cid.Sha256());
    }

    [Fact]
    public void Parse_and_format_round_trip()
    {
        var random = new Random(1234);
        for (var i = 0; i < 200; i++)
        {
            var blob = new byte[random.Next(0, 300)];
            random.NextBytes(blob);
            var cid = Cid.Compute(blob);

            Assert.StartsWith("bafkrei", cid.Value, StringComparison.Ordinal);
            Assert.Equal(59, cid.Value.Length);
            Assert.Equal(cid, Cid.Parse(cid.ToString()));
            Assert.True(Cid.TryParse(cid.Value, out var parsed));
            Assert.Equal(cid, parsed);
            Assert.Equal(SHA256.HashData(blob), parsed.Sha256());
        }
    }

    [Fact]
    public void From_sha256_builds_the_same_cid_as_compute()
    {
        var digest = SHA256.HashData("hello"u8);

        Assert.Equal(Cid.Compute("hello"u8), Cid.FromSha256(digest));
        Assert.Equal(digest, Cid.FromSha256(digest).Sha256());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(31)]
    [InlineData(33)]
    [InlineData(64)]
    public void From_sha256_rejects_a_digest_that_is_not_32_bytes(int length)
    {
        Assert.Throws<ArgumentException>(() => Cid.FromSha256(new byte[length]));
    }

    [Fact]
    public void Equal_bytes_give_equal_cids_and_different_bytes_different_ones()
    {
        Assert.Equal(Cid.Compute(Encoding.UTF8.GetBytes("same")), Cid.Compute("same"u8));
        Assert.NotEqual(Cid.Compute("a"u8), Cid.Compute("b"u8));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("b")]
    [InlineData("BAFKREIBM6JG3UX5QUMHCN2B3FLC3TYU6DMLB4XA7U5BF44YEGNRJHC4YEQ")] // multibase base32upper
    [InlineData("bafkreiBm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq")] // one upper-case letter
    [InlineData("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq======")] // padding
    [InlineData("afkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq")] // no multibase prefix
    [InlineData("zafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq")] // base58btc prefix
    [InlineData("f015512202cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")] // base16
    [InlineData("QmRN6wdp1S2A5EtjW9A3M1vKSBuQQGcgvuhoMUoEz4iiT5")] // CIDv0 of "hello"
    [InlineData("bafybeibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq")] // codec dag-pb
    [InlineData("bafyreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq")] // codec dag-cbor
    [InlineData("bajkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq")] // CID version 2
    [InlineData("bafkrehzm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4y")] // 31-byte digest
    [InlineData("bafk2bzaceaze3tycpxkkgcutfrcb6ns2exugwfz556slrzmjjasti4nydnzm6")] // blake2b-256
    [InlineData("bafkrgqe3ohjcjplc6n4f3fwunlj6upltggn7xqujbsvnvyw764srszz4u4rshq6ztos4chl4plgg4ffyyxnayrtdi5oc4xb2332g645433aeg")] // sha2-512
    [InlineData("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4ye")] // one character short
    [InlineData("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeqa")] // one character long
    [InlineData("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq ")] // trailing space
    [InlineData("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq\n")] // trailing newline
    [InlineData(" bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq")] // leading space
    [InlineData("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4ye1")] // '1' is not base32
    [InlineData("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4ye8")] // '8' is not base32
    [InlineData("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4ye=")] // '=' in place of data
    [InlineData("bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yer")] // unused bits set: same bytes, not canonical
    public void Non_canonical_or_foreign_cid_strings_are_rejected(string? s)
    {
        Assert.False(Cid.TryParse(s, out var result));
        Assert.Equal(default, result);
        Assert.False(Cid.TryParse(s, null, out _));
        Assert.Throws<FormatException>(() => Cid.Parse(s!));
    }

    [Fact]
    public void Parse_error_says_what_was_expected()
    {
        var e = Assert.Throws<FormatException>(() => Cid.Parse("QmRN6wdp1S2A5EtjW9A3M1vKSBuQQGcgvuhoMUoEz4iiT5"));

        Assert.Contains("QmRN6wdp1S2A5EtjW9A3M1vKSBuQQGcgvuhoMUoEz4iiT5", e.Message, StringComparison.Ordinal);
        Assert.Contains("bafkrei", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_works_through_the_generic_parsable_interface()
    {
        Assert.Equal(Cid.Compute("hello"u8), ParseAs<Cid>(HelloCid));
    }

    [Fact]
    public void Default_cid_has_no_value()
    {
        Assert.Null(default(Cid).Value);
    }

    [Fact]
    public void Json_reads_and_writes_a_cid_as_a_plain_string()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        var holder = new Holder(Cid.Compute("hello"u8), new Dictionary<string, Cid> { ["c"] = Cid.Compute([]) });

        var json = JsonSerializer.Serialize(holder, options);

        Assert.Equal($$$"""{"cid":"{{{HelloCid}}}","outputs":{"c":"{{{EmptyBlobCid}}}"}}""", json);
        var back = JsonSerializer.Deserialize<Holder>(json, options)!;
        Assert.Equal(holder.Cid, back.Cid);
        Assert.Equal(holder.Outputs["c"], back.Outputs["c"]);
    }

    [Theory]
    [InlineData("\"QmRN6wdp1S2A5EtjW9A3M1vKSBuQQGcgvuhoMUoEz4iiT5\"")]
    [InlineData("\"BAFKREIBM6JG3UX5QUMHCN2B3FLC3TYU6DMLB4XA7U5BF44YEGNRJHC4YEQ\"")]
    [InlineData("\"\"")]
    [InlineData("null")]
    [InlineData("42")]
    [InlineData("{}")]
    public void Json_with_an_invalid_cid_throws_json_exception(string value)
    {
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<Cid>(value));
    }

    private static T ParseAs<T>(string s)
        where T : IParsable<T> => T.Parse(s, null);

    private sealed record Holder(Cid Cid, Dictionary<string, Cid> Outputs);
}
