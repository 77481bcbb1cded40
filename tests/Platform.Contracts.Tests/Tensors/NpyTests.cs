using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Platform.Contracts.Tensors;
using Xunit.Abstractions;

namespace Platform.Contracts.Tests.Tensors;

public class NpyTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Streamed_npy_is_byte_for_byte_the_one_built_in_memory_and_as_long_as_announced()
    {
        const int seed = 31;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        // Empty, one int32 matrix, and floats spanning more than one 1 MiB slice with a short last one.
        var floats = new float[(1 << 18) * 2 + 3];
        for (var i = 0; i < floats.Length; i++)
            floats[i] = random.NextSingle() - 0.5f;
        NpyArray[] tensors =
        [
            NpyArray.FromFloat32([], 0),
            NpyArray.FromInt32([.. Enumerable.Range(0, 12).Select(_ => random.Next())], 3, 4),
            NpyArray.FromFloat32(floats, floats.Length),
        ];

        foreach (var tensor in tensors)
        {
            using var streamed = new MemoryStream();
            await Npy.WriteAsync(streamed, tensor);

            Assert.Equal(Npy.ToBytes(tensor), streamed.ToArray());
            Assert.Equal(streamed.Length, Npy.ByteLength(tensor));
        }
    }

    [Fact]
    public void Reads_a_float32_vector_written_by_numpy()
    {
        var a = ReadBothWays(NumpyFixtures.Bytes(NumpyFixtures.Float32Vector));

        Assert.Equal(NpyDType.Float32, a.DType);
        Assert.Equal([5], a.Shape);
        Assert.Equal([1.5f, -2.25f, 0f, 3.0e38f, -1e-7f], a.Float32!);
        Assert.Null(a.Int32);
    }

    [Fact]
    public void Reads_an_int32_matrix_written_by_numpy()
    {
        var a = ReadBothWays(NumpyFixtures.Bytes(NumpyFixtures.Int32Matrix));

        Assert.Equal(NpyDType.Int32, a.DType);
        Assert.Equal([3, 4], a.Shape);
        Assert.Equal(Enumerable.Range(-6, 12), a.Int32!);
        Assert.Null(a.Float32);
    }

    [Fact]
    public void Reads_a_0d_scalar_written_by_numpy()
    {
        var a = ReadBothWays(NumpyFixtures.Bytes(NumpyFixtures.Float32Scalar));

        Assert.Empty(a.Shape);
        Assert.Equal([3.5f], a.Float32!);
    }

    [Fact]
    public void Reads_format_2_0_written_by_numpy()
    {
        var bytes = NumpyFixtures.Bytes(NumpyFixtures.Int32MatrixVersion2);
        Assert.Equal(2, bytes[6]);

        var a = ReadBothWays(bytes);

        Assert.Equal([2, 3], a.Shape);
        Assert.Equal([1, -2, int.MaxValue, int.MinValue, 0, 7], a.Int32!);
    }

    [Fact]
    public void Reads_an_empty_array_written_by_numpy()
    {
        var a = ReadBothWays(NumpyFixtures.Bytes(NumpyFixtures.Float32Empty));

        Assert.Equal([0, 3], a.Shape);
        Assert.Empty(a.Float32!);
    }

    // Same array, same bytes, same CID, whether numpy or we wrote it.
    [Theory]
    [InlineData(nameof(NumpyFixtures.Float32Vector))]
    [InlineData(nameof(NumpyFixtures.Int32Matrix))]
    [InlineData(nameof(NumpyFixtures.Float32Scalar))]
    [InlineData(nameof(NumpyFixtures.Float32Empty))]
    public void Writer_output_is_byte_identical_to_numpy(string fixture)
    {
        var numpyBytes = NumpyFixtures.Bytes((string)typeof(NumpyFixtures).GetField(fixture)!.GetValue(null)!);
        var a = Npy.Read(numpyBytes);

        Assert.Equal(numpyBytes, Npy.ToBytes(a));
        using var stream = new MemoryStream();
        Npy.Write(stream, a);
        Assert.Equal(numpyBytes, stream.ToArray());
    }

    [Fact]
    public void Writer_pads_the_preamble_to_64_bytes_and_ends_it_with_a_newline()
    {
        foreach (var shape in new[] { Array.Empty<int>(), [7], [1, 2, 3, 4, 5, 6, 7, 8], [int.MaxValue / 4, 0] })
        {
            var count = shape.Aggregate(1L, (n, d) => n * d);
            var bytes = Npy.ToBytes(NpyArray.FromInt32(new int[count], shape));
            var header = Npy.ReadHeader(new MemoryStream(bytes));

            Assert.Equal(0, header.DataOffset % 64);
            Assert.Equal((byte)'\n', bytes[header.DataOffset - 1]);
            Assert.Equal(shape, header.Shape);
            Assert.Equal(bytes.Length, header.DataOffset + header.DataLength);
        }
    }

    [Theory]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", new[] { 3, 4 })]
    [InlineData("{'shape': (3, 4), 'fortran_order': False, 'descr': '<f4'}", new[] { 3, 4 })]
    [InlineData("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (3,4)}", new[] { 3, 4 })]
    [InlineData("{'descr':'<f4','fortran_order':False,'shape':(5,),}", new[] { 5 })]
    [InlineData("  {  'descr' :  '<f4' ,\n 'fortran_order' : False ,\t'shape' : (  2 , 3 , ) , }  ", new[] { 2, 3 })]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': ()}", new int[0])]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (3L, 4L), }", new[] { 3, 4 })]
    public void Header_parser_accepts_any_key_order_quotes_spacing_and_trailing_comma(string dict, int[] shape)
    {
        var count = shape.Aggregate(1, (n, d) => n * d);
        var bytes = File1(dict, count * 4);

        Assert.True(Npy.TryReadHeader(bytes, out var header, out var error), error);
        Assert.Equal(NpyDType.Float32, header.DType);
        Assert.Equal(shape, header.Shape);
        Assert.Equal(count, header.ElementCount);
        Assert.Equal(shape, Npy.Read(bytes).Shape);
    }

    public static TheoryData<string, byte[], string> MalformedInputs => new()
    {
        { "empty input", [], "truncated header: expected 8 bytes, got 0" },
        { "truncated magic", [0x93, (byte)'N', (byte)'U', (byte)'M'], "truncated header" },
        { "not npy at all", "PK\x03\x04 this is a zip"u8.ToArray(), "not a .npy file" },
        { "version 3.0", WithVersion(3, 0), "unsupported .npy format version 3.0" },
        { "version 1.1", WithVersion(1, 1), "unsupported .npy format version 1.1" },
        { "big-endian float32", File1("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8), "unsupported dtype '>f4'" },
        {
            "float64", File1("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16),
            "unsupported dtype '<f8': only '<f4' (float32) and '<i4' (int32) are accepted"
        },
        { "int64", File1("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", 16), "unsupported dtype '<i8'" },
        { "structured dtype", File1("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8), "structured dtypes" },
        { "fortran order", File1("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16), "fortran_order True" },
        { "fortran order not a bool", File1("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", 8), "True or False" },
        { "negative dimension", File1("{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 4), }", 0), "negative dimension -3" },
        {
            "huge dimensions", File1("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100000), }", 0),
            "shape (100000, 100000, 100000) has too many elements"
        },
        { "dimension beyond int", File1("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999,), }", 0), "dimension 99999999999 is too large" },
        {
            "nine dimensions", File1("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }", 4),
            "too many dimensions"
        },
        { "truncated data", File1("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 20), "truncated data: expected 48 bytes, got 20" },
        { "trailing bytes", File1("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", 12), "trailing bytes" },
        { "header length beyond the stream", WithHeaderLength(1, 1000, 20), "truncated header: expected 1010 bytes, got 30" },
        { "header length over the limit", WithHeaderLength(2, uint.MaxValue, 20), "exceeds the limit" },
        { "missing shape", File1("{'descr': '<f4', 'fortran_order': False}", 0), "'shape' is missing" },
        { "missing descr", File1("{'fortran_order': False, 'shape': ()}", 4), "'descr' is missing" },
        { "unknown key", File1("{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}", 4), "unexpected key 'x'" },
        { "duplicate key", File1("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}", 4), "duplicate key 'descr'" },
        { "shape is a number", File1("{'descr': '<f4', 'fortran_order': False, 'shape': (5)}", 20), "not a tuple" },
        { "shape is a list", File1("{'descr': '<f4', 'fortran_order': False, 'shape': [5]}", 20), "a tuple such as (3, 4)" },
        { "shape without commas", File1("{'descr': '<f4', 'fortran_order': False, 'shape': (5 4)}", 80), "expected ',' or ')'" },
        { "dict never closed", File1("{'descr': '<f4', 'fortran_order': False, 'shape': (5,)", 20), "found the end of the header" },
        { "text after the dict", File1("{'descr': '<f4', 'fortran_order': False, 'shape': (5,)} x", 20), "nothing after the header dict" },
        { "not a dict", File1("['<f4', False, (5,)]", 20), "expected '{'" },
        { "misplaced quote", File1("{'descr: '<f4'}", 0), "expected ':'" },
        { "string runs to the end", File1("{'descr", 0), "unterminated string" },
        { "escape in a string", File1("{'de\\x73cr': '<f4'}", 0), "escape sequences" },
        { "control byte", File1("{\u0001}", 0), "found byte 0x01" },
    };

    [Theory]
    [MemberData(nameof(MalformedInputs))]
    public void Malformed_input_gives_a_clear_npy_format_exception(string name, byte[] bytes, string expected)
    {
        output.WriteLine(name);

        var fromSpan = Assert.Throws<NpyFormatException>(() => Npy.Read(bytes));
        var fromStream = Assert.Throws<NpyFormatException>(() => Npy.Read(new OneWayStream(bytes)));

        Assert.Contains(expected, fromSpan.Message, StringComparison.Ordinal);
        Assert.Contains(expected, fromStream.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Hostile_shape_on_a_short_stream_fails_without_allocating_the_claimed_size()
    {
        // Claims 2 GiB of data but sends 20 bytes: the reader must fail on the missing bytes, not on memory.
        var bytes = File1($"{{'descr': '<f4', 'fortran_order': False, 'shape': ({Npy.MaxElements},), }}", 20);
        var before = GC.GetAllocatedBytesForCurrentThread();

        var e = Assert.Throws<NpyFormatException>(() => Npy.Read(new OneWayStream(bytes, 4096)));

        Assert.Contains($"truncated data: expected {Npy.MaxElements * 4} bytes, got 20", e.Message, StringComparison.Ordinal);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20);
    }

    [Fact]
    public void Try_read_header_parses_just_the_first_bytes_of_a_blob()
    {
        var bytes = Npy.ToBytes(NpyArray.FromFloat32(new float[1000], 10, 100));

        Assert.True(Npy.TryReadHeader(bytes.AsSpan(0, 256), out var header, out var error), error);
        Assert.Equal(NpyDType.Float32, header.DType);
        Assert.Equal([10, 100], header.Shape);
        Assert.Equal(128, header.DataOffset);
        Assert.Equal(1000, header.ElementCount);
        Assert.Equal(4000, header.DataLength);
        Assert.Equal("", error);
    }

    [Fact]
    public void Try_read_header_says_when_the_prefix_is_too_short()
    {
        var bytes = Npy.ToBytes(NpyArray.FromFloat32(new float[1000], 10, 100));

        Assert.False(Npy.TryReadHeader(bytes.AsSpan(0, 50), out var header, out var error));
        Assert.Null(header);
        Assert.Equal("truncated header: expected 128 bytes, got 50", error);

        Assert.False(Npy.TryReadHeader(bytes.AsSpan(0, 9), out _, out error));
        Assert.Equal("truncated header: expected 10 bytes, got 9", error);
    }

    [Fact]
    public void Try_read_header_says_why_a_blob_is_not_a_tensor()
    {
        Assert.False(Npy.TryReadHeader("hello world"u8, out _, out var error));
        Assert.Contains("not a .npy file", error, StringComparison.Ordinal);

        var f8 = File1("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16);
        Assert.False(Npy.TryReadHeader(f8, out _, out error));
        Assert.Contains("unsupported dtype '<f8'", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_header_leaves_the_stream_at_the_first_data_byte()
    {
        var bytes = Npy.ToBytes(NpyArray.FromInt32([42, 43], 2));
        using var stream = new MemoryStream(bytes);

        var header = Npy.ReadHeader(stream);

        Assert.Equal(header.DataOffset, stream.Position);
        Assert.Equal(42, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(header.DataOffset)));
    }

    [Fact]
    public void Random_arrays_round_trip_bit_exactly()
    {
        const int seed = 20240611;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        for (var i = 0; i < 300; i++)
        {
            var shape = new int[random.Next(0, 5)];
            for (var d = 0; d < shape.Length; d++)
            {
                shape[d] = random.Next(0, 7);
            }

            var bits = new int[shape.Aggregate(1, (n, d) => n * d)];
            for (var j = 0; j < bits.Length; j++)
            {
                bits[j] = random.Next(int.MinValue, int.MaxValue);
            }

            // Random float bit patterns include NaNs with payloads, infinities and -0: all must survive.
            var a = random.Next(2) == 0
                ? NpyArray.FromInt32(bits, shape)
                : NpyArray.FromFloat32(MemoryMarshal.Cast<int, float>(bits).ToArray(), shape);
            var bytes = Npy.ToBytes(a);
            using var written = new MemoryStream();
            Npy.Write(written, a);

            Assert.Equal(bytes, written.ToArray());
            foreach (var back in new[] { Npy.Read(bytes), Npy.Read(new OneWayStream(bytes, random.Next(1, 64))) })
            {
                Assert.Equal(a.DType, back.DType);
                Assert.Equal(shape, back.Shape);
                Assert.Equal(bits, a.DType == NpyDType.Int32 ? back.Int32 : MemoryMarshal.Cast<float, int>(back.Float32).ToArray());
            }
        }
    }

    [Fact]
    public void Corrupted_and_truncated_files_only_ever_give_npy_format_exception()
    {
        const int seed = 77;
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var fixtures = new[]
        {
            NumpyFixtures.Float32Vector, NumpyFixtures.Int32Matrix, NumpyFixtures.Float32Scalar,
            NumpyFixtures.Int32MatrixVersion2, NumpyFixtures.Float32Empty,
        }.Select(NumpyFixtures.Bytes).ToArray();

        foreach (var original in fixtures)
        {
            for (var length = 0; length < original.Length; length++)
            {
                var truncated = original[..length];
                Assert.Throws<NpyFormatException>(() => Npy.Read(truncated));
                Assert.Throws<NpyFormatException>(() => Npy.Read(new OneWayStream(truncated)));
            }

            for (var i = 0; i < 2000; i++)
            {
                var mutated = (byte[])original.Clone();
                for (var k = random.Next(1, 4); k > 0; k--)
                {
                    // Mostly hit the preamble, where the parsing is.
                    mutated[random.Next(0, Math.Min(mutated.Length, 140))] = (byte)random.Next(256);
                }

                ReadOrFormatError(mutated);
            }
        }
    }

    [Fact]
    public void Factories_reject_data_that_does_not_fit_the_shape()
    {
        Assert.Throws<ArgumentException>(() => NpyArray.FromFloat32(new float[5], 2, 3));
        Assert.Throws<ArgumentException>(() => NpyArray.FromInt32(new int[5], 5, -1));
        Assert.Throws<ArgumentException>(() => NpyArray.FromInt32([])); // a 0-d scalar holds one element
        Assert.Throws<ArgumentException>(() => NpyArray.FromInt32([1], 1, 1, 1, 1, 1, 1, 1, 1, 1));
        Assert.Equal([3.5f], NpyArray.FromFloat32([3.5f]).Float32!);
    }

    [Fact]
    public void Factories_copy_the_shape()
    {
        int[] shape = [2, 2];
        var a = NpyArray.FromInt32(new int[4], shape);
        shape[0] = 4;

        Assert.Equal([2, 2], a.Shape);
    }

    [Fact]
    public void Npy_format_exception_is_a_format_exception()
    {
        Assert.IsAssignableFrom<FormatException>(new NpyFormatException("x"));
    }

    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    // Either both readers accept the bytes or both reject them with NpyFormatException; any other
    // exception escapes and fails the test.
    private static void ReadOrFormatError(byte[] bytes)
    {
        try
        {
            var a = Npy.Read(bytes);
            Assert.Equal(a.Shape, Npy.Read(new OneWayStream(bytes)).Shape);
        }
        catch (NpyFormatException)
        {
            Assert.Throws<NpyFormatException>(() => Npy.Read(new OneWayStream(bytes)));
        }
    }

    private static NpyArray ReadBothWays(byte[] bytes)
    {
        var fromSpan = Npy.Read(bytes);
        var fromStream = Npy.Read(new OneWayStream(bytes));

        Assert.Equal(fromSpan.DType, fromStream.DType);
        Assert.Equal(fromSpan.Shape, fromStream.Shape);
        Assert.Equal(fromSpan.Float32, fromStream.Float32);
        Assert.Equal(fromSpan.Int32, fromStream.Int32);
        return fromSpan;
    }

    /// <summary>A format 1.0 file with the given header text (unpadded) and that many zero data bytes.</summary>
    private static byte[] File1(string dict, int dataBytes)
    {
        var header = Encoding.Latin1.GetBytes(dict + "\n");
        var bytes = new byte[10 + header.Length + dataBytes];
        Magic.CopyTo(bytes, 0);
        bytes[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)header.Length);
        header.CopyTo(bytes, 10);
        return bytes;
    }

    private static byte[] WithVersion(byte major, byte minor)
    {
        var bytes = NumpyFixtures.Bytes(NumpyFixtures.Float32Vector);
        bytes[6] = major;
        bytes[7] = minor;
        return bytes;
    }

    /// <summary>Magic, version and a header length field claiming <paramref name="length"/>, then <paramref name="actual"/> bytes of header.</summary>
    private static byte[] WithHeaderLength(byte major, uint length, int actual)
    {
        var fieldSize = major == 1 ? 2 : 4;
        var bytes = new byte[8 + fieldSize + actual];
        Magic.CopyTo(bytes, 0);
        bytes[6] = major;
        if (major == 1)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)length);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), length);
        }

        bytes.AsSpan(8 + fieldSize).Fill((byte)' ');
        return bytes;
    }
}
