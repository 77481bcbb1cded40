namespace Platform.Contracts.Api;

/// <summary>The key the platform signs receipts with, for clients to pin (GET /v1/receipts/key).</summary>
/// <param name="PublicKey">P-256 SubjectPublicKeyInfo, base64: the value a receipt's platformKey must equal.</param>
/// <param name="Fingerprint">"sha256:" and the first 16 hex digits of the SHA-256 of the key's bytes, as verify prints it.</param>
/// <param name="Algorithm">How receipts are signed.</param>
public sealed record ReceiptKeyView(string PublicKey, string Fingerprint, string Algorithm);
