using System.Text.Json;

namespace Platform.Contracts;

/// <summary>The JSON the platform stores and sends: web defaults (camelCase), one shared instance.</summary>
public static class PlatformJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web);
}
