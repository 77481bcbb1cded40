using System.ComponentModel.DataAnnotations;
using System.Text;

namespace Platform.Gateway.Auth;

public sealed class GatewayOptions
{
    public const string SectionName = "Platform";

    /// <summary>Key of the built-in admin, from configuration only (Platform__AdminKey); never stored.</summary>
    public string? AdminKey { get; set; }

    /// <summary>
    /// The server secret API keys are hashed under (HMAC-SHA256), from configuration only
    /// (Platform__KeyHashSecret), at least 32 characters; required. Whoever reads the database without it cannot
    /// test a guessed key against the stored hashes. Changing it invalidates every issued key.
    /// </summary>
    [Required(ErrorMessage = "Platform:KeyHashSecret is required: a random string of at least 32 characters (./platform up generates one into .platform/key-hash.secret)")]
    [MinLength(32, ErrorMessage = "Platform:KeyHashSecret must be at least 32 characters")]
    public string? KeyHashSecret { get; set; }

    /// <summary>
    /// How long an API key that authenticated is believed without reading api_keys again (Platform__ApiKeyCacheTtl);
    /// 0 turns the cache off. Bounds how long a revoked key or a changed role would still act as before.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00", ErrorMessage = "Platform:ApiKeyCacheTtl must be between 0 and 1 hour")]
    public TimeSpan ApiKeyCacheTtl { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Most API keys held in that cache at once (Platform__ApiKeyCacheSize).</summary>
    [Range(1, 10_000_000)]
    public int ApiKeyCacheSize { get; set; } = 100_000;

    public byte[] KeyHashSecretBytes() => Encoding.UTF8.GetBytes(KeyHashSecret ?? throw new InvalidOperationException("Platform:KeyHashSecret is not set"));
}
