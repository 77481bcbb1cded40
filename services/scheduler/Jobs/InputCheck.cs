using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using Platform.Contracts;
using Platform.Contracts.Kernels;
using Platform.Contracts.Messages;
using Platform.Contracts.Tensors;

namespace Platform.Scheduler.Jobs;

/// <summary>
/// The network's own look at a job's inputs, for a worker's input_* claim that no other operator's worker can
/// confirm. It runs what a worker runs before computing: every input pinned, a .npy header within the first
/// <see cref="HeaderBytes"/>, a blob exactly as long as its header says (no truncation, no trailing bytes), shapes,
/// dtypes and parameters that fit the kernel (<see cref="KernelCatalog.Plan"/>), and the element values the
/// kernel constrains (<see cref="KernelCatalog.CheckValue"/>). Storage verifies every chunk it serves against the
/// blob's Merkle leaves, so what it serves is what the CID names. Bounded: only the first bytes of an input are
/// read, except the value-checked input and, for an input_corrupt claim, every input, which are streamed through a
/// hash in fixed-size buffers, never held whole.
/// </summary>
public sealed class InputCheck(HttpClient storage)
{
    /// <summary>Enough to hold any .npy header the gateway accepts (it reads the same prefix at submit).</summary>
    public const int HeaderBytes = 4096;

    /// <summary>What the network found: <see cref="Reason"/> null when the inputs fit the kernel.</summary>
    public sealed record Finding(string? Reason, string Detail);

    /// <summary>
    /// Checks the job's inputs; throws <see cref="HttpRequestException"/> (or <see cref="IOException"/>, or a timeout)
    /// when storage cannot answer, which is no finding at all.
    /// </summary>
    public async Task<Finding> CheckAsync(JobSpec spec, bool hashEveryInput, CancellationToken ct)
    {
        if (KernelCatalog.CheckNames(spec.Kernel, spec.Inputs.Keys.ToList(), spec.Params) is { } nameError)
            return new(JobReasons.InputInvalid, nameError);
        var valued = KernelCatalog.ValueCheckedInput(spec.Kernel);
        var infos = new Dictionary<string, TensorInfo>();
        foreach (var (name, cid) in spec.Inputs.OrderBy(i => i.Key, StringComparer.Ordinal))
        {
            var (info, problem) = await ReadAsync(spec.Kernel, name, cid, whole: hashEveryInput || name == valued, checkValues: name == valued, ct);
            if (problem is not null)
                return problem;
            infos[name] = info!;
        }
        KernelCatalog.Plan(spec.Kernel, infos, spec.Params, out var planError);
        return planError is not null
            ? new(JobReasons.InputInvalid, planError)
            : new(null, $"every input is pinned and fits {spec.Kernel} ({string.Join(", ", infos.Select(i => $"{i.Key} {i.Value.Describe()}"))})");
    }

    private async Task<(TensorInfo? Info, Finding? Problem)> ReadAsync(string kernel, string name, Cid cid, bool whole, bool checkValues, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/blobs/{cid}");
        if (!whole)
            request.Headers.Range = new RangeHeaderValue(0, HeaderBytes - 1);
        using var response = await storage.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.StatusCode == HttpStatusCode.NotFound)
            return (null, new(JobReasons.InputMissing, $"input '{name}' ({cid}) is not pinned on the network"));
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            return (null, new(JobReasons.InputInvalid, $"input '{name}' is not a valid .npy tensor: the blob is empty"));
        // Anything else (storage down, 5xx, a copy it cannot verify) says nothing about the job.
        response.EnsureSuccessStatusCode();
        var size = response.Content.Headers.ContentRange?.Length ?? response.Content.Headers.ContentLength
            ?? throw new HttpRequestException($"storage did not say how large {cid} is");

        await using var body = await response.Content.ReadAsStreamAsync(ct);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 16];
        // A ranged answer may still be the whole blob (storage may ignore Range): only the prefix is read then.
        var prefixLength = await body.ReadAtLeastAsync(buffer.AsMemory(0, HeaderBytes), HeaderBytes, throwOnEndOfStream: false, ct);
        if (!Npy.TryReadHeader(buffer.AsSpan(0, prefixLength), out var header, out var npyError))
            return (null, new(JobReasons.InputInvalid, $"input '{name}' is not a valid .npy tensor: {npyError}"));
        var expected = header.DataOffset + header.DataLength;
        if (size < expected)
            return (null, new(JobReasons.InputInvalid, $"input '{name}' is not a valid .npy tensor: its data is truncated (the header promises {expected:N0} bytes, the blob has {size:N0})"));
        if (size > expected)
            return (null, new(JobReasons.InputInvalid, $"input '{name}' is not a valid .npy tensor: {size - expected:N0} trailing bytes after the array data"));
        var info = new TensorInfo(header.DType, header.Shape);
        if (!whole)
            return (info, null);

        // The rest streams through the hash (and the value rule) a buffer at a time.
        long read = 0;
        var carry = 0; // bytes of an element split across two reads, kept at the start of the buffer
        var filled = prefixLength;
        while (true)
        {
            hash.AppendData(buffer, carry, filled - carry);
            var elementsFrom = Math.Max(0, header.DataOffset - read);
            if (checkValues && elementsFrom < filled)
            {
                var start = (int)elementsFrom;
                var whole4 = (filled - start) / 4 * 4;
                for (var at = start; at < start + whole4; at += 4)
                {
                    var index = (read + at - header.DataOffset) / 4;
                    var value = header.DType == NpyDType.Float32
                        ? BinaryPrimitives.ReadSingleLittleEndian(buffer.AsSpan(at))
                        : BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan(at));
                    if (KernelCatalog.CheckValue(kernel, index, value) is { } valueError)
                        return (null, new(JobReasons.InputInvalid, valueError));
                }
                carry = filled - start - whole4;
            }
            else
            {
                carry = 0;
            }
            read += filled - carry;
            buffer.AsSpan(filled - carry, carry).CopyTo(buffer);
            var got = await body.ReadAsync(buffer.AsMemory(carry), ct);
            if (got == 0)
                break;
            filled = carry + got;
        }
        if (read + carry != size)
            throw new HttpRequestException($"storage announced {size:N0} bytes of {cid} and sent {read + carry:N0}");
        if (Cid.FromSha256(hash.GetHashAndReset()) != cid)
            return (null, new(JobReasons.InputCorrupt, $"input '{name}': the bytes the network serves for {cid} do not hash to it"));
        return (info, null);
    }
}
