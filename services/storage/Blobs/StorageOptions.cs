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
    [RegularExpression("^[a-z0-9][a-z0-9.-]{0,62}$", ErrorMessage = "Storage:NodeId is lower-case letters, digits, dots and dashes")]
    public string NodeId { get; set; } = Environment.MachineName.ToLowerInvariant();

    /// <summary>filesystem (the node's volume under RootPath) or s3 (Storage:S3).</summary>
    [Required]
    [RegularExpression("^(filesystem|s3)$", ErrorMessage = "Storage:Backend must be filesystem or s3")]
    public string Backend { get; set; } = "filesystem";

    /// <summary>
    /// Writes uploads to disk with direct I/O (O_DIRECT, Linux on x64 and Arm64), not through the page cache, where the
    /// file system takes aligned direct writes (probed at start) and copies stay on this volume (the filesystem
    /// backend): the same disk speed for less CPU (0.4-1.0 s less per GiB pinned here). False writes through the page cache.
    /// </summary>
    public bool DirectIo { get; set; } = true;

    /// <summary>
    /// A verified read of at least this many bytes of one blob reads the copy with direct I/O too (where writes are
    /// direct): read once and sent, it gains nothing from the page cache and would push out the small blobs jobs read
    /// again and again; and it is cheaper (no copy out of the cache: 0.2-0.3 CPU seconds per GiB here). Shorter reads
    /// go through the cache.
    /// </summary>
    [Range(typeof(long), "1048576", "9223372036854775807", ErrorMessage = "Storage:DirectReadMinBytes must be at least one chunk (1048576)")]
    public long DirectReadMinBytes { get; set; } = 64L << 20;

    /// <summary>Where peers reach this node; defaults to the address it listens on.</summary>
    public Uri? AdvertisedUrl { get; set; }

    /// <summary>Copies of every pin the nodes keep between them; nodes copy pins until this many hold one.</summary>
    [Range(1, 16)]
    public int ReplicaCount { get; set; } = 2;

    /// <summary>How long a verified copy goes before the scrubber re-hashes it.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "365.00:00:00")]
    public TimeSpan ScrubPeriod { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Bytes per second the scrubber may re-hash, so it never starves reads and writes.</summary>
    [Range(1, long.MaxValue)]
    public long ScrubBytesPerSecond { get; set; } = 50L << 20;

    /// <summary>
    /// Longest wait between attempts to repair a copy no peer could send intact; the wait starts at one
    /// heartbeat and doubles with each failure.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "30.00:00:00")]
    public TimeSpan RepairRetryMax { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How often this node announces itself to its peers, and looks for pins short of copies.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);
}
