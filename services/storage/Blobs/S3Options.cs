using System.ComponentModel.DataAnnotations;

namespace Platform.Storage.Blobs;

/// <summary>Where <see cref="S3Backend"/> keeps copies; validated only when Storage:Backend is "s3".</summary>
public sealed class S3Options : IValidatableObject
{
    public const string SectionName = "Storage:S3";

    /// <summary>The endpoint, e.g. https://s3.eu-west-1.amazonaws.com or a MinIO / moto address.</summary>
    [Required]
    public Uri? ServiceUrl { get; set; }

    /// <summary>Created on first use if missing. Several storage nodes may share it (see <see cref="Prefix"/>).</summary>
    [Required]
    [RegularExpression("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", ErrorMessage = "Bucket must be a valid S3 bucket name (3-63 characters: lower-case letters, digits, '.' and '-').")]
    public string Bucket { get; set; } = "";

    /// <summary>With <see cref="SecretKey"/>; both empty means the SDK's default credential chain (environment, profile, instance role).</summary>
    public string? AccessKey { get; set; }

    public string? SecretKey { get; set; }

    /// <summary>The signing region; also where a missing bucket is created.</summary>
    [Required]
    public string Region { get; set; } = "us-east-1";

    /// <summary>bucket in the path (http://host/bucket/key), as MinIO and moto need, rather than in the host name.</summary>
    public bool ForcePathStyle { get; set; } = true;

    /// <summary>
    /// Put before every key. Null means "{Storage:NodeId}/", so nodes sharing a bucket each keep their own
    /// copies (a node's copies are its replicas; sharing objects would make several pins one copy).
    /// </summary>
    public string? Prefix { get; set; }

    /// <summary>Retries of a failed request (throttling, 5xx); null keeps the SDK's default. Tests set 0 to fail fast.</summary>
    [Range(0, 100)]
    public int? MaxErrorRetry { get; set; }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (string.IsNullOrEmpty(AccessKey) != string.IsNullOrEmpty(SecretKey))
        {
            yield return new ValidationResult(
                "Set both AccessKey and SecretKey, or neither to use the default credential chain.",
                [nameof(AccessKey), nameof(SecretKey)]);
        }
    }
}
