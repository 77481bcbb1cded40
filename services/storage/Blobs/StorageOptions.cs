using System.ComponentModel.DataAnnotations;

namespace Platform.Storage.Blobs;

public sealed class StorageOptions
{
    public const string SectionName = "Storage";

    /// <summary>Folder holding the blobs (content-addressed) and a tmp/ folder for uploads in flight.</summary>
    [Required]
    public string RootPath { get; set; } = ".platform/storage";

    /// <summary>Largest blob accepted; bigger uploads get 413.</summary>
    [Range(1, long.MaxValue)]
    public long MaxBlobBytes { get; set; } = 1L << 30;

    /// <summary>Names this storage instance in pin records and events.</summary>
    [Required]
    public string NodeId { get; set; } = Environment.MachineName.ToLowerInvariant();
}
