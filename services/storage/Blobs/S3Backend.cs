using System.Collections.Concurrent;
using System.Net;
using System.Runtime.CompilerServices;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Amazon.S3.Transfer;
using Microsoft.Extensions.Options;
using Platform.Contracts;

namespace Platform.Storage.Blobs;

/// <summary>
/// Copies as objects in an S3-compatible bucket, under the key "{Prefix}{cid}". An object appears whole when
/// its PUT (or multipart completion) succeeds, so readers never see a partial copy.
/// </summary>
public sealed class S3Backend : IBlobBackend, IDisposable
{
    private readonly AmazonS3Client _client;
    private readonly TransferUtility _transfer;
    private readonly string _bucket;
    private readonly string _region;
    private readonly string _prefix;
    private readonly SemaphoreSlim _bucketGate = new(1, 1);
    private readonly ConcurrentDictionary<Cid, Task> _storing = new();
    private volatile bool _bucketReady;

    public S3Backend(IOptions<S3Options> options, IOptions<StorageOptions> storage)
    {
        var s3 = options.Value;
        var config = new AmazonS3Config
        {
            ServiceURL = (s3.ServiceUrl ?? throw new InvalidOperationException("Storage:S3:ServiceUrl is required")).ToString(),
            ForcePathStyle = s3.ForcePathStyle,
            AuthenticationRegion = s3.Region,
        };
        if (s3.MaxErrorRetry is { } retries)
            config.MaxErrorRetry = retries;
        _client = string.IsNullOrEmpty(s3.AccessKey)
            ? new AmazonS3Client(config)
            : new AmazonS3Client(new BasicAWSCredentials(s3.AccessKey, s3.SecretKey), config);
        _transfer = new TransferUtility(_client);
        _bucket = s3.Bucket;
        _region = s3.Region;
        _prefix = s3.Prefix ?? storage.Value.NodeId + "/";
    }

    public string Name => "s3";

    /// <summary>The object key of a copy; tests use it to damage copies on purpose.</summary>
    public string KeyOf(Cid cid) => _prefix + cid.Value;

    public async Task<long?> SizeAsync(Cid cid, CancellationToken ct)
    {
        await EnsureBucketAsync(ct);
        try
        {
            var head = await _client.GetObjectMetadataAsync(_bucket, KeyOf(cid), ct);
            return head.ContentLength;
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    public async Task StoreAsync(Cid cid, string sourceFile, bool overwrite, CancellationToken ct)
    {
        // One store per CID at a time on this node: concurrent uploads of the same bytes would only waste
        // bandwidth (and moto 5.2 answers 500 to concurrent PUTs of one key). Later ones wait, then find the copy.
        var mine = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task? running;
        while ((running = _storing.GetOrAdd(cid, mine.Task)) != mine.Task)
            await running.WaitAsync(ct);

        try
        {
            await EnsureBucketAsync(ct);
            // Same CID, same bytes: an existing copy is as good as a new one.
            if (overwrite || await SizeAsync(cid, ct) is null)
            {
                // TransferUtility switches to a multipart upload for big files; the object appears only on completion.
                await _transfer.UploadAsync(new TransferUtilityUploadRequest { BucketName = _bucket, Key = KeyOf(cid), FilePath = sourceFile }, ct);
            }
            File.Delete(sourceFile);
        }
        finally
        {
            _storing.TryRemove(KeyValuePair.Create(cid, mine.Task));
            mine.SetResult();
        }
    }

    public async Task<Stream?> OpenReadAsync(Cid cid, long offset, long length, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        await EnsureBucketAsync(ct);
        if (length == 0)
        {
            // A range cannot be empty; only whether the copy exists matters.
            return await SizeAsync(cid, ct) is null ? null : Stream.Null;
        }

        var request = new GetObjectRequest
        {
            BucketName = _bucket,
            Key = KeyOf(cid),
            // Saturated: a caller may ask for "everything from offset" with length long.MaxValue.
            ByteRange = new ByteRange(offset, length > long.MaxValue - offset ? long.MaxValue : offset + length - 1),
        };
        try
        {
            // Disposing the response stream releases the connection, so the caller owns only the stream.
            var response = await _client.GetObjectAsync(request, ct);
            return response.ResponseStream;
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            // The object exists (else 404) but starts at or before offset: nothing to read, as for a file.
            return Stream.Null;
        }
    }

    public async IAsyncEnumerable<Cid> ListAsync([EnumeratorCancellation] CancellationToken ct)
    {
        await EnsureBucketAsync(ct);
        var request = new ListObjectsV2Request { BucketName = _bucket, Prefix = _prefix };
        do
        {
            var page = await _client.ListObjectsV2Async(request, ct);
            // SDK v4 leaves collections null when empty.
            foreach (var item in page.S3Objects ?? [])
            {
                // Keys under the prefix that are not CIDs are not copies (someone else's objects, or deeper paths).
                if (Cid.TryParse(item.Key[_prefix.Length..], out var cid))
                    yield return cid;
            }
            request.ContinuationToken = page.IsTruncated == true ? page.NextContinuationToken : null;
        }
        while (request.ContinuationToken is not null);
    }

    // Nodes may start against a bucket nobody has created yet, possibly several at once.
    private async Task EnsureBucketAsync(CancellationToken ct)
    {
        if (_bucketReady)
            return;
        await _bucketGate.WaitAsync(ct);
        try
        {
            if (_bucketReady)
                return;
            if (!await BucketExistsAsync(ct))
            {
                try
                {
                    var create = new PutBucketRequest { BucketName = _bucket };
                    // us-east-1 is the default location and S3 rejects it as an explicit constraint.
                    if (_region != "us-east-1")
                        create.BucketRegionName = _region;
                    await _client.PutBucketAsync(create, ct);
                }
                catch (AmazonS3Exception)
                {
                    // Another node may have created it between the check and the PUT; anything else is a real failure.
                    if (!await BucketExistsAsync(ct))
                        throw;
                }
            }
            _bucketReady = true;
        }
        finally
        {
            _bucketGate.Release();
        }
    }

    private async Task<bool> BucketExistsAsync(CancellationToken ct)
    {
        try
        {
            await _client.HeadBucketAsync(new HeadBucketRequest { BucketName = _bucket }, ct);
            return true;
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    public void Dispose()
    {
        _transfer.Dispose();
        _client.Dispose();
        _bucketGate.Dispose();
    }
}
