using System.Security.Cryptography;
using Dapper;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Platform.Gateway.Receipts;

/// <summary>
/// The platform's receipt-signing key: from configuration, else the one in the gateway's database, created there by
/// whichever instance needs it first (the insert that loses the race reads the winner's key).
/// </summary>
public sealed class ReceiptSigningKey(IOptions<ReceiptOptions> options, NpgsqlDataSource db, TimeProvider clock)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private string? _pem;

    /// <summary>A new ECDsa for the key: instances are not safe to share between threads, creating one is cheap.</summary>
    public async Task<ECDsa> OpenAsync(CancellationToken ct) => FromPem(await PemAsync(ct));

    private async Task<string> PemAsync(CancellationToken ct)
    {
        if (_pem is not null)
            return _pem;
        await _gate.WaitAsync(ct);
        try
        {
            if (_pem is not null)
                return _pem;
            if (!string.IsNullOrWhiteSpace(options.Value.ReceiptSigningKey))
                return _pem = options.Value.ReceiptSigningKey;
            using var fresh = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            await using var connection = await db.OpenConnectionAsync(ct);
            await connection.ExecuteAsync(new CommandDefinition(
                "insert into receipt_signing_key (id, private_key, created_at) values (1, @pem, @now) on conflict (id) do nothing",
                new { pem = fresh.ExportPkcs8PrivateKeyPem(), now = clock.GetUtcNow() }, cancellationToken: ct));
            return _pem = await connection.ExecuteScalarAsync<string>(new CommandDefinition(
                "select private_key from receipt_signing_key where id = 1", cancellationToken: ct))
                ?? throw new InvalidOperationException("the receipt signing key row is missing right after it was written");
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The P-256 private key in <paramref name="pem"/>; throws for anything else.</summary>
    public static ECDsa FromPem(string pem)
    {
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(pem);
            if (key.KeySize != 256 || key.ExportParameters(false).Curve.Oid.Value != ECCurve.NamedCurves.nistP256.Oid.Value)
                throw new ArgumentException("the key is not on curve P-256", nameof(pem));
            key.SignData([0], HashAlgorithmName.SHA256); // a public key alone cannot sign
            return key;
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }
}
