using System.Buffers.Binary;
using System.Text;
using Platform.Contracts.Tensors;

namespace Platform.EndToEnd.Tests;

/// <summary>.npy files that lie, by name: each breaks one rule of DESIGN.md section 5.</summary>
public static class HostileNpy
{
    private const string F4 = "'descr': '<f4', 'fortran_order': False";

    public static byte[] Make(string what) => what switch
    {
        "<f8" => File("{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", 32),
        ">f4" => File("{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", 16),
        "<i8" => File("{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", 32),
        "|O object" => File("{'descr': '|O', 'fortran_order': False, 'shape': (4,), }", 32),
        "<U8 unicode" => File("{'descr': '<U8', 'fortran_order': False, 'shape': (4,), }", 128),
        "fortran order" => File("{'descr': '<f4', 'fortran_order': True, 'shape': (4,), }", 16),
        "shape (-1,)" => File($"{{{F4}, 'shape': (-1,), }}", 16),
        "shape with 2^40 elements" => File($"{{{F4}, 'shape': (1048576, 1048576), }}", 16),
        "dimension past int" => File($"{{{F4}, 'shape': (2147483648,), }}", 16),
        "nine dimensions" => File($"{{{F4}, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 4), }}", 16),
        "shape (5) not a tuple" => File($"{{{F4}, 'shape': (4), }}", 16),
        "header says 5000 bytes, file has 80" => WithLength(File($"{{{F4}, 'shape': (4,), }}", 16), 5000),
        "header of 60000 bytes" => WithLength(File($"{{{F4}, 'shape': (4,), }}", 16), 60_000),
        "2.0 header of 4 GiB" => [0x93, .. "NUMPY"u8.ToArray(), 2, 0, 0xFF, 0xFF, 0xFF, 0xFF, .. "{}"u8.ToArray()],
        "truncated header" => File($"{{{F4}, 'shape': (4,), }}", 16)[..20],
        "magic only" => [0x93, .. "NUMPY"u8.ToArray()],
        "empty file" => [],
        "a PNG" => [0x89, .. "PNG\r\n\x1a\n"u8.ToArray(), 0, 0, 0, 13],
        "non-ASCII header" => File("{'descr': '<f4\u00e9', 'fortran_order': False, 'shape': (4,), }", 16),
        "NUL in the header" => File("{'descr': '<f4\0', 'fortran_order': False, 'shape': (4,), }", 16),
        "version 3.0" => File($"{{{F4}, 'shape': (4,), }}", 16, major: 3),
        "version 1.1" => File($"{{{F4}, 'shape': (4,), }}", 16, minor: 1),
        "structured dtype" => File("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", 16),
        "duplicate key" => File($"{{{F4}, 'shape': (4,), 'shape': (4,), }}", 16),
        "extra key" => File($"{{{F4}, 'shape': (4,), 'evil': 1, }}", 16),
        "escape in a string" => File("{'descr': '<f\\x34', 'fortran_order': False, 'shape': (4,), }", 16),
        "unterminated string" => File("{'descr': '<f4, 'fortran_order': False, 'shape': (4,), }", 16),
        "int32 for vector-add" => Npy.ToBytes(NpyArray.FromInt32([1, 2, 3, 4], 4)),
        "a scalar for vector-add" => File($"{{{F4}, 'shape': (), }}", 4),
        "valid header longer than 4 KiB" => File($"{{{F4}, 'shape': (4,), }}" + new string(' ', 5000), 16, major: 2),
        _ => throw new ArgumentException($"no hostile .npy called '{what}'", nameof(what)),
    };

    /// <summary>A preamble around <paramref name="dict"/> (latin-1, padded to 64 bytes) and that many data bytes.</summary>
    private static byte[] File(string dict, int dataBytes, byte major = 1, byte minor = 0)
    {
        var lengthSize = major == 1 ? 2 : 4;
        var header = dict + "\n";
        var padding = (64 - ((8 + lengthSize + Encoding.Latin1.GetByteCount(header)) % 64)) % 64;
        header = dict + new string(' ', padding) + "\n";
        var headerBytes = Encoding.Latin1.GetBytes(header);
        var file = new byte[8 + lengthSize + headerBytes.Length + dataBytes];
        file[0] = 0x93;
        "NUMPY"u8.CopyTo(file.AsSpan(1));
        file[6] = major;
        file[7] = minor;
        if (lengthSize == 2)
            BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(8), (ushort)headerBytes.Length);
        else
            BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(8), (uint)headerBytes.Length);
        headerBytes.CopyTo(file, 8 + lengthSize);
        return file;
    }

    /// <summary>The file with its 1.0 header-length field rewritten to lie.</summary>
    private static byte[] WithLength(byte[] file, ushort length)
    {
        var copy = (byte[])file.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(copy.AsSpan(8), length);
        return copy;
    }
}
