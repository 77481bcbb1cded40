namespace Platform.Contracts.Tensors;

/// <summary>The element types a tensor may have (DESIGN.md section 5): little-endian, 4 bytes each.</summary>
public enum NpyDType
{
    /// <summary>NumPy descr '&lt;f4'.</summary>
    Float32,

    /// <summary>NumPy descr '&lt;i4'.</summary>
    Int32,
}
