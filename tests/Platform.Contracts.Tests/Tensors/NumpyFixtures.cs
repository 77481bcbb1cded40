namespace Platform.Contracts.Tests.Tensors;

/// <summary>
/// Files written by real numpy (1.24, Debian's python3-numpy), base64-encoded because this project
/// keeps no binary test files. Regenerate with, for example:
/// <code>
/// python3 -c "import numpy as np, io, base64; b = io.BytesIO(); np.save(b, np.arange(-6, 6, dtype=np.int32).reshape(3, 4)); print(base64.b64encode(b.getvalue()).decode())"
/// </code>
/// </summary>
internal static class NumpyFixtures
{
    /// <summary>np.save of np.array([1.5, -2.25, 0.0, 3.0e38, -1e-7], dtype=np.float32).</summary>
    public const string Float32Vector =
        "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDUsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAMA/AAAQwAAAAADmsWF/lb/Wsw==";

    /// <summary>np.save of np.arange(-6, 6, dtype=np.int32).reshape(3, 4).</summary>
    public const string Int32Matrix =
        "k05VTVBZAQB2AHsnZGVzY3InOiAnPGk0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsIDQpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAr6////+/////z////9/////v////////8AAAAAAQAAAAIAAAADAAAABAAAAAUAAAA=";

    /// <summary>np.save of np.array(3.5, dtype=np.float32): a 0-d scalar, shape ().</summary>
    public const string Float32Scalar =
        "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAGBA";

    /// <summary>
    /// np.lib.format.write_array(f, np.array([[1, -2, 2147483647], [-2147483648, 0, 7]], dtype=np.int32), version=(2, 0)).
    /// </summary>
    public const string Int32MatrixVersion2 =
        "k05VTVBZAgB0AAAAeydkZXNjcic6ICc8aTQnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMiwgMyksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoBAAAA/v///////38AAACAAAAAAAcAAAA=";

    /// <summary>np.save of np.zeros((0, 3), dtype=np.float32): no data bytes at all.</summary>
    public const string Float32Empty =
        "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDAsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAo=";

    public static byte[] Bytes(string base64) => Convert.FromBase64String(base64);
}
