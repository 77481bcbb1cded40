using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Platform.Contracts.Tensors;

/// <summary>
/// Reads and writes NumPy .npy files (format 1.0 and 2.0), restricted to what DESIGN.md section 5
/// accepts: little-endian '&lt;f4' / '&lt;i4', C order, at most <see cref="MaxDimensions"/> dimensions.
/// Every malformed input gives an <see cref="NpyFormatException"/>; sizes are bounded before anything
/// is allocated so hostile headers cannot exhaust memory.
/// </summary>
public static class Npy
{
    /// <summary>Largest header we read; numpy's own headers are ~100 bytes, this only stops abuse.</summary>
    public const int MaxHeaderLength = 1 << 20;

    public const int MaxDimensions = 8;

    /// <summary>So the data of any array fits one .NET byte array (4 bytes per element).</summary>
    public const long MaxElements = int.MaxValue / 4;

    private const int FixedLength = 8; // magic (6) + major + minor
    private const int Alignment = 64;

    // numpy leaves room to grow the first axis in place; we pad the same way so that an array we
    // write is byte-identical to numpy's, and so has the same CID.
    private const int GrowthAxisMaxDigits = 21;

    // Grow the data array as bytes arrive instead of trusting the header's size up front.
    private const int InitialElements = 1 << 16;

    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Reads the preamble only; the stream is left at the first data byte.</summary>
    public static NpyHeader ReadHeader(Stream s)
    {
        ArgumentNullException.ThrowIfNull(s);
        Span<byte> fixedPart = stackalloc byte[FixedLength + 4];
        var got = s.ReadAtLeast(fixedPart[..FixedLength], FixedLength, throwOnEndOfStream: false);
        var lengthSize = LengthFieldSize(fixedPart[..got]);

        var lengthField = fixedPart.Slice(FixedLength, lengthSize);
        got = s.ReadAtLeast(lengthField, lengthSize, throwOnEndOfStream: false);
        if (got < lengthSize)
        {
            throw TruncatedHeader(FixedLength + lengthSize, FixedLength + got);
        }

        var headerLength = HeaderLength(lengthField);
        var header = new byte[headerLength];
        got = s.ReadAtLeast(header, headerLength, throwOnEndOfStream: false);
        var dataOffset = FixedLength + lengthSize + headerLength;
        if (got < headerLength)
        {
            throw TruncatedHeader(dataOffset, FixedLength + lengthSize + got);
        }

        return ParseDict(header, dataOffset);
    }

    /// <summary>
    /// Parses the header from the first bytes of a file (e.g. the first few KiB of an upload). Returns
    /// false with a reason when the bytes are not a valid header or do not yet hold all of it.
    /// </summary>
    public static bool TryReadHeader(ReadOnlySpan<byte> prefix, [NotNullWhen(true)] out NpyHeader? header, out string error)
    {
        try
        {
            header = ParseHeader(prefix);
            error = "";
            return true;
        }
        catch (NpyFormatException e)
        {
            header = null;
            error = e.Message;
            return false;
        }
    }

    /// <summary>Reads a whole .npy file; the stream must end right after the array data.</summary>
    public static NpyArray Read(Stream s)
    {
        var header = ReadHeader(s);
        var array = header.DType == NpyDType.Float32
            ? NpyArray.FromFloat32(ReadData<float>(s, header.ElementCount), header.Shape)
            : NpyArray.FromInt32(ReadData<int>(s, header.ElementCount), header.Shape);

        Span<byte> probe = stackalloc byte[1];
        if (s.Read(probe) != 0)
        {
            throw new NpyFormatException($"trailing bytes after the array data (which ends at byte {header.DataOffset + header.DataLength})");
        }

        return array;
    }

    public static NpyArray Read(ReadOnlySpan<byte> bytes)
    {
        var header = ParseHeader(bytes);
        var data = bytes[header.DataOffset..];
        if (data.Length < header.DataLength)
        {
            throw TruncatedData(header.DataLength, data.Length);
        }

        if (data.Length > header.DataLength)
        {
            throw new NpyFormatException($"{data.Length - header.DataLength} trailing bytes after the array data");
        }

        return header.DType == NpyDType.Float32
            ? NpyArray.FromFloat32(CopyData<float>(data, header.ElementCount), header.Shape)
            : NpyArray.FromInt32(CopyData<int>(data, header.ElementCount), header.Shape);
    }

    public static void Write(Stream s, NpyArray a)
    {
        ArgumentNullException.ThrowIfNull(s);
        s.Write(Preamble(a));
        var data = Elements(a);
        if (BitConverter.IsLittleEndian)
        {
            s.Write(MemoryMarshal.AsBytes(data));
        }
        else
        {
            var swapped = data.ToArray();
            BinaryPrimitives.ReverseEndianness(swapped, swapped);
            s.Write(MemoryMarshal.AsBytes(swapped.AsSpan()));
        }
    }

    /// <summary>How many bytes <see cref="Write"/> writes for <paramref name="a"/>.</summary>
    public static long ByteLength(NpyArray a) => Preamble(a).Length + (Elements(a).Length * 4L);

    /// <summary>
    /// <see cref="Write"/> without the whole file in memory and without blocking: the elements go out 1 MiB at a time
    /// through one pooled buffer (a large output is streamed to storage rather than copied into one array first).
    /// </summary>
    public static async Task WriteAsync(Stream s, NpyArray a, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(s);
        await s.WriteAsync(Preamble(a), ct);
        var elements = Elements(a).Length;
        if (elements == 0)
        {
            return;
        }

        const int Step = 1 << 18; // elements, 1 MiB
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(Step * 4);
        try
        {
            for (var start = 0; start < elements; start += Step)
            {
                var count = Math.Min(Step, elements - start);
                CopyLittleEndian(a, start, count, buffer);
                await s.WriteAsync(buffer.AsMemory(0, count * 4), ct);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void CopyLittleEndian(NpyArray a, int start, int count, byte[] buffer)
    {
        var bytes = buffer.AsSpan(0, count * 4);
        MemoryMarshal.AsBytes(Elements(a).Slice(start, count)).CopyTo(bytes);
        if (!BitConverter.IsLittleEndian)
        {
            var ints = MemoryMarshal.Cast<byte, int>(bytes);
            BinaryPrimitives.ReverseEndianness(ints, ints);
        }
    }

    public static byte[] ToBytes(NpyArray a)
    {
        var preamble = Preamble(a);
        var data = Elements(a);
        var result = new byte[preamble.Length + (data.Length * 4L)];
        preamble.CopyTo(result, 0);
        var target = result.AsSpan(preamble.Length);
        MemoryMarshal.AsBytes(data).CopyTo(target);
        if (!BitConverter.IsLittleEndian)
        {
            var ints = MemoryMarshal.Cast<byte, int>(target);
            BinaryPrimitives.ReverseEndianness(ints, ints);
        }

        return result;
    }

    /// <summary>Null when the shape is acceptable, else the reason; <paramref name="count"/> is its element count.</summary>
    internal static string? CheckShape(ReadOnlySpan<int> shape, out long count)
    {
        count = 0;
        if (shape.Length > MaxDimensions)
        {
            return $"too many dimensions: {shape.Length} (at most {MaxDimensions} are supported)";
        }

        foreach (var dim in shape)
        {
            if (dim < 0)
            {
                return $"negative dimension {dim} in shape {FormatShape(shape)}";
            }

            if (dim == 0)
            {
                return null; // an empty array, however large its other dimensions
            }
        }

        count = 1;
        foreach (var dim in shape)
        {
            // count <= MaxElements and dim <= int.MaxValue, so the product cannot overflow a long.
            count *= dim;
            if (count > MaxElements)
            {
                count = 0;
                return $"shape {FormatShape(shape)} has too many elements: at most {MaxElements} are supported";
            }
        }

        return null;
    }

    /// <summary>The Python repr of a shape tuple, as numpy writes it: (), (5,), (3, 4).</summary>
    internal static string FormatShape(ReadOnlySpan<int> shape) => shape.Length switch
    {
        0 => "()",
        1 => $"({shape[0].ToString(CultureInfo.InvariantCulture)},)",
        _ => "(" + string.Join(", ", shape.ToArray().Select(d => d.ToString(CultureInfo.InvariantCulture))) + ")",
    };

    private static NpyHeader ParseHeader(ReadOnlySpan<byte> bytes)
    {
        var lengthSize = LengthFieldSize(bytes[..Math.Min(FixedLength, bytes.Length)]);
        if (bytes.Length < FixedLength + lengthSize)
        {
            throw TruncatedHeader(FixedLength + lengthSize, bytes.Length);
        }

        var headerLength = HeaderLength(bytes.Slice(FixedLength, lengthSize));
        var dataOffset = FixedLength + lengthSize + headerLength;
        if (bytes.Length < dataOffset)
        {
            throw TruncatedHeader(dataOffset, bytes.Length);
        }

        return ParseDict(bytes[(FixedLength + lengthSize)..dataOffset], dataOffset);
    }

    // Checks magic and version in the first 8 bytes (fewer if that is all there is) and returns the
    // size of the header-length field: 2 bytes in format 1.0, 4 in 2.0.
    private static int LengthFieldSize(ReadOnlySpan<byte> start)
    {
        var magicPart = start[..Math.Min(Magic.Length, start.Length)];
        if (!magicPart.SequenceEqual(Magic[..magicPart.Length]))
        {
            throw new NpyFormatException("not a .npy file: it does not start with the magic string \\x93NUMPY");
        }

        if (start.Length < FixedLength)
        {
            throw TruncatedHeader(FixedLength, start.Length);
        }

        return (start[6], start[7]) switch
        {
            (1, 0) => 2,
            (2, 0) => 4,
            var (major, minor) => throw new NpyFormatException(
                $"unsupported .npy format version {major}.{minor}: only 1.0 and 2.0 are accepted"),
        };
    }

    private static int HeaderLength(ReadOnlySpan<byte> field)
    {
        uint length = field.Length == 2
            ? BinaryPrimitives.ReadUInt16LittleEndian(field)
            : BinaryPrimitives.ReadUInt32LittleEndian(field);
        if (length > MaxHeaderLength)
        {
            throw new NpyFormatException($"header length {length} exceeds the limit of {MaxHeaderLength} bytes");
        }

        return (int)length;
    }

    private static NpyHeader ParseDict(ReadOnlySpan<byte> raw, int dataOffset)
    {
        // Format 1.0 and 2.0 headers are latin-1; anything outside ASCII just fails to parse below.
        var fields = new HeaderParser(Encoding.Latin1.GetString(raw)).Parse();
        var dtype = fields.Descr switch
        {
            "<f4" => NpyDType.Float32,
            "<i4" => NpyDType.Int32,
            _ => throw new NpyFormatException(
                $"unsupported dtype '{Clip(fields.Descr)}': only '<f4' (float32) and '<i4' (int32) are accepted"),
        };

        if (fields.FortranOrder)
        {
            throw new NpyFormatException("fortran_order True is not supported: only C-order arrays are accepted");
        }

        var error = CheckShape(fields.Shape, out _);
        return error is null ? new NpyHeader(dtype, fields.Shape, dataOffset) : throw new NpyFormatException(error);
    }

    private static T[] ReadData<T>(Stream s, long count)
        where T : unmanaged
    {
        var total = (int)(count * 4); // count <= MaxElements, checked when the header was parsed
        var data = new T[Math.Min(count, InitialElements)];
        var filled = 0;
        while (filled < total)
        {
            if (filled == data.Length * 4)
            {
                Array.Resize(ref data, (int)Math.Min(count, data.Length * 2L));
            }

            var n = s.Read(MemoryMarshal.AsBytes(data.AsSpan())[filled..]);
            if (n == 0)
            {
                throw TruncatedData(total, filled);
            }

            filled += n;
        }

        FromLittleEndian<T>(data);
        return data;
    }

    private static T[] CopyData<T>(ReadOnlySpan<byte> bytes, long count)
        where T : unmanaged
    {
        var data = new T[count];
        bytes.CopyTo(MemoryMarshal.AsBytes(data.AsSpan()));
        FromLittleEndian<T>(data);
        return data;
    }

    private static void FromLittleEndian<T>(Span<T> data)
        where T : unmanaged
    {
        if (!BitConverter.IsLittleEndian)
        {
            var ints = MemoryMarshal.Cast<T, int>(data);
            BinaryPrimitives.ReverseEndianness(ints, ints);
        }
    }

    // Both dtypes are 4-byte values, so the writer handles them as raw int32 bit patterns.
    private static ReadOnlySpan<int> Elements(NpyArray a)
    {
        ArgumentNullException.ThrowIfNull(a);
        return a.DType == NpyDType.Float32 ? MemoryMarshal.Cast<float, int>(a.Float32) : a.Int32;
    }

    // Builds magic + version + header length + dict, padded with spaces and '\n' exactly as numpy does.
    private static byte[] Preamble(NpyArray a)
    {
        ArgumentNullException.ThrowIfNull(a);
        var descr = a.DType == NpyDType.Float32 ? "<f4" : "<i4";
        var dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {FormatShape(a.Shape)}, }}";
        if (a.Shape.Length > 0)
        {
            dict += new string(' ', GrowthAxisMaxDigits - a.Shape[0].ToString(CultureInfo.InvariantCulture).Length);
        }

        // numpy picks format 1.0 whenever the header fits its 16-bit length field. With at most
        // MaxDimensions dimensions ours is under 256 bytes, so 1.0 always fits and 2.0 is only read.
        const int lengthSize = 2;
        var headerLength = PaddedLength(dict.Length + 1, lengthSize);
        var preamble = new byte[FixedLength + lengthSize + headerLength];
        Magic.CopyTo(preamble);
        preamble[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(preamble.AsSpan(FixedLength), (ushort)headerLength);
        var body = preamble.AsSpan(FixedLength + lengthSize);
        Encoding.ASCII.GetBytes(dict, body);
        body[dict.Length..^1].Fill((byte)' ');
        body[^1] = (byte)'\n';
        return preamble;
    }

    private static int PaddedLength(int unpadded, int lengthSize) =>
        unpadded + Alignment - ((FixedLength + lengthSize + unpadded) % Alignment);

    private static NpyFormatException TruncatedHeader(long expected, long got) =>
        new($"truncated header: expected {expected} bytes, got {got}");

    private static NpyFormatException TruncatedData(long expected, long got) =>
        new($"truncated data: expected {expected} bytes, got {got}");

    // Keeps messages short when a hostile header puts a megabyte into one value.
    internal static string Clip(string s) => s.Length <= 40 ? s : s[..40] + "...";

    private readonly record struct HeaderFields(string Descr, bool FortranOrder, int[] Shape);

    /// <summary>
    /// The subset of Python literal syntax numpy headers use: a dict with quoted keys, a quoted descr,
    /// True/False and a tuple of ints, in any key order, with any spacing and an optional trailing comma.
    /// </summary>
    private sealed class HeaderParser(string text)
    {
        private int _pos;

        private int Peek => _pos < text.Length ? text[_pos] : -1;

        public HeaderFields Parse()
        {
            string? descr = null;
            bool? fortranOrder = null;
            int[]? shape = null;

            SkipSpace();
            Expect('{');
            while (true)
            {
                SkipSpace();
                if (Peek == '}')
                {
                    _pos++;
                    break;
                }

                var key = ReadString();
                SkipSpace();
                Expect(':');
                SkipSpace();
                switch (key)
                {
                    case "descr" when descr is null:
                        descr = ReadDescr();
                        break;
                    case "fortran_order" when fortranOrder is null:
                        fortranOrder = ReadBool();
                        break;
                    case "shape" when shape is null:
                        shape = ReadShape();
                        break;
                    case "descr" or "fortran_order" or "shape":
                        throw new NpyFormatException($"duplicate key '{key}' in header");
                    default:
                        throw new NpyFormatException(
                            $"unexpected key '{Clip(key)}' in header: only 'descr', 'fortran_order' and 'shape' are allowed");
                }

                SkipSpace();
                if (Peek == ',')
                {
                    _pos++;
                }
                else if (Peek != '}')
                {
                    throw Unexpected("',' or '}'");
                }
            }

            SkipSpace();
            if (_pos != text.Length)
            {
                throw Unexpected("nothing after the header dict");
            }

            return new HeaderFields(
                descr ?? throw Missing("descr"),
                fortranOrder ?? throw Missing("fortran_order"),
                shape ?? throw Missing("shape"));
        }

        private string ReadDescr()
        {
            if (Peek == '[')
            {
                throw new NpyFormatException(
                    "unsupported dtype: structured dtypes are not accepted, only '<f4' (float32) and '<i4' (int32)");
            }

            return ReadString();
        }

        private string ReadString()
        {
            var quote = Peek;
            if (quote is not ('\'' or '"'))
            {
                throw Unexpected("a quoted string");
            }

            var start = ++_pos;
            while (Peek != quote)
            {
                switch (Peek)
                {
                    case -1:
                        throw new NpyFormatException("malformed header: unterminated string");
                    case '\\':
                        throw new NpyFormatException("malformed header: escape sequences in strings are not supported");
                    default:
                        _pos++;
                        break;
                }
            }

            _pos++;
            return text[start..(_pos - 1)];
        }

        private bool ReadBool()
        {
            var start = _pos;
            while (Peek is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or '_' or >= '0' and <= '9')
            {
                _pos++;
            }

            return text[start.._pos] switch
            {
                "True" => true,
                "False" => false,
                _ => throw Unexpected("True or False for fortran_order", start),
            };
        }

        private int[] ReadShape()
        {
            if (Peek != '(')
            {
                throw Unexpected("a tuple such as (3, 4) for shape");
            }

            _pos++;
            var dims = new List<int>();
            var sawComma = false;
            SkipSpace();
            while (Peek != ')')
            {
                if (dims.Count == MaxDimensions)
                {
                    throw new NpyFormatException($"too many dimensions: at most {MaxDimensions} are supported");
                }

                dims.Add(ReadDimension());
                SkipSpace();
                if (Peek == ',')
                {
                    _pos++;
                    sawComma = true;
                    SkipSpace();
                }
                else if (Peek != ')')
                {
                    throw Unexpected("',' or ')' in shape");
                }
            }

            _pos++;
            if (dims.Count == 1 && !sawComma)
            {
                // Python reads (5) as the number 5, which numpy rejects as a shape.
                throw new NpyFormatException("malformed header: shape (n) is not a tuple, a one-dimensional shape is written (n,)");
            }

            return [.. dims];
        }

        private int ReadDimension()
        {
            var start = _pos;
            if (Peek == '-')
            {
                _pos++;
            }

            if (Peek is not (>= '0' and <= '9'))
            {
                throw Unexpected("a dimension (a non-negative integer)", _pos);
            }

            long value = 0;
            while (Peek is >= '0' and <= '9')
            {
                // Stop accumulating once out of range: the value is rejected below anyway.
                if (value <= int.MaxValue)
                {
                    value = (value * 10) + (Peek - '0');
                }

                _pos++;
            }

            var literal = Clip(text[start.._pos]);
            if (Peek is 'L' or 'l')
            {
                _pos++; // Python 2 long suffix, found in files written by old numpy versions
            }

            if (text[start] == '-' && value != 0)
            {
                throw new NpyFormatException($"negative dimension {literal} in shape");
            }

            return value <= int.MaxValue
                ? (int)value
                : throw new NpyFormatException($"dimension {literal} is too large: at most {int.MaxValue}");
        }

        private void SkipSpace()
        {
            while (Peek is ' ' or '\t' or '\n' or '\r')
            {
                _pos++;
            }
        }

        private void Expect(char c)
        {
            if (Peek != c)
            {
                throw Unexpected($"'{c}'");
            }

            _pos++;
        }

        private NpyFormatException Unexpected(string expected) => Unexpected(expected, _pos);

        private NpyFormatException Unexpected(string expected, int at)
        {
            var found = at >= text.Length
                ? "the end of the header"
                : text[at] is >= ' ' and < '\x7f' ? $"'{text[at]}'" : $"byte 0x{(int)text[at]:x2}";
            return new NpyFormatException($"malformed header at offset {at}: expected {expected}, found {found}");
        }

        private static NpyFormatException Missing(string key) =>
            new($"malformed header: the key '{key}' is missing");
    }
}
