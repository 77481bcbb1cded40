namespace Platform.Contracts.Tensors;

/// <summary>What a .npy preamble says: element type, C-order shape and where the data starts.</summary>
public sealed record NpyHeader(NpyDType DType, int[] Shape, int DataOffset)
{
    public long ElementCount
    {
        get
        {
            long count = 1;
            foreach (var dim in Shape)
            {
                count *= dim;
            }

            return count;
        }
    }

    /// <summary>Bytes of array data after the preamble: both accepted dtypes are 4 bytes wide.</summary>
    public long DataLength => ElementCount * 4;
}
