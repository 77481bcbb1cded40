using System.Security.Cryptography;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using Platform.Contracts.Signing;

namespace Platform.Contracts.Receipts;

/// <summary>
/// The one byte form of a receipt. A receipt file is <see cref="Serialize"/>'s output: the <see cref="SignedReceipt"/>
/// as indented JSON (two spaces, "\n" line ends, properties in declaration order, no escaping beyond what JSON
/// needs) and one trailing newline. The platform signs <see cref="ReceiptBytes"/>, the receipt member serialized
/// the same way on its own. Because the form is fixed, a verifier re-serializes what it parsed and refuses a file
/// whose bytes differ: whitespace, key order, number spelling and escapes cannot change unnoticed, and every other
/// change alters the signed bytes.
/// </summary>
public static class ReceiptJson
{
    public const string MediaType = "application/json";

    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        PropertyNameCaseInsensitive = false,
        WriteIndented = true,
        IndentCharacter = ' ',
        IndentSize = 2,
        NewLine = "\n",
        // No HTML-safe escaping: base64's '+' stays '+', so the file reads as it will be checked.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        NumberHandling = JsonNumberHandling.Strict,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        AllowDuplicateProperties = false,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        MaxDepth = 16,
    };

    /// <summary>The exact bytes the platform signs.</summary>
    public static byte[] ReceiptBytes(JobReceipt receipt) => JsonSerializer.SerializeToUtf8Bytes(receipt, Options);

    /// <summary>The receipt file.</summary>
    public static byte[] Serialize(SignedReceipt signed) => [.. JsonSerializer.SerializeToUtf8Bytes(signed, Options), (byte)'\n'];

    /// <summary>Signs <paramref name="receipt"/> with the platform's receipt key (ECDSA P-256, SHA-256, DER, base64).</summary>
    public static SignedReceipt Sign(JobReceipt receipt, ECDsa platformKey) => new()
    {
        Receipt = receipt,
        PlatformKey = ResultSignature.ExportPublicKey(platformKey),
        PlatformSignature = Convert.ToBase64String(platformKey.SignData(ReceiptBytes(receipt), HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence)),
    };

    /// <summary>The receipt in <paramref name="file"/>; throws <see cref="JsonException"/> for anything that is not one.</summary>
    public static SignedReceipt Parse(ReadOnlySpan<byte> file) =>
        JsonSerializer.Deserialize<SignedReceipt>(file, Options) ?? throw new JsonException("the file holds null, not a receipt");
}
