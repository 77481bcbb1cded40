using System.Security.Cryptography;
using Microsoft.Extensions.Options;

namespace Platform.Gateway.Receipts;

public sealed class ReceiptOptions
{
    public const string SectionName = "Platform";

    /// <summary>
    /// The platform's receipt-signing key: an ECDSA P-256 private key in PEM (PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE
    /// KEY"), from configuration only (Platform__ReceiptSigningKey). When unset, the first gateway to sign a receipt
    /// generates one into its database and every instance uses that; setting it keeps the key out of the database.
    /// </summary>
    public string? ReceiptSigningKey { get; set; }
}

public sealed class ReceiptOptionsValidator : IValidateOptions<ReceiptOptions>
{
    public ValidateOptionsResult Validate(string? name, ReceiptOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.ReceiptSigningKey))
            return ValidateOptionsResult.Success;
        try
        {
            using var key = ReceiptSigningKey.FromPem(options.ReceiptSigningKey);
            return ValidateOptionsResult.Success;
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            return ValidateOptionsResult.Fail($"Platform:ReceiptSigningKey is not an ECDSA P-256 private key in PEM: {e.Message}");
        }
    }
}
