namespace Platform.Contracts.Tensors;

/// <summary>
/// A C-order tensor: exactly one of <see cref="Float32"/> and <see cref="Int32"/> is set, as
/// <see cref="DType"/> says. The data array is held, not copied, because tensors can be large.
/// </summary>
public sealed class NpyArray
{
    private NpyArray(NpyDType dtype, int[] shape, float[]? float32, int[]? int32)
    {
        DType = dtype;
        Shape = shape;
        Float32 = float32;
        Int32 = int32;
    }

    public NpyDType DType { get; }

    public int[] Shape { get; }

    public float[]? Float32 { get; }

    public int[]? Int32 { get; }

    public static NpyArray FromFloat32(float[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        return new NpyArray(NpyDType.Float32, CheckedShape(data.Length, shape), data, null);
    }

    public static NpyArray FromInt32(int[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        return new NpyArray(NpyDType.Int32, CheckedShape(data.Length, shape), null, data);
    }

    // The shape is copied so a caller reusing its params array cannot change ours afterwards.
    private static int[] CheckedShape(int length, int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var error = Npy.CheckShape(shape, out var count);
        if (error is not null)
        {
            throw new ArgumentException(error, nameof(shape));
        }

        if (count != length)
        {
            throw new ArgumentException(
                $"shape {Npy.FormatShape(shape)} holds {count} elements but the data has {length}", nameof(shape));
        }

        return (int[])shape.Clone();
    }
}
