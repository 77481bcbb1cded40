namespace Platform.Gateway.Auth;

public sealed class GatewayOptions
{
    public const string SectionName = "Platform";

    /// <summary>Key of the built-in admin, from configuration only (Platform__AdminKey); never stored.</summary>
    public string? AdminKey { get; set; }
}
