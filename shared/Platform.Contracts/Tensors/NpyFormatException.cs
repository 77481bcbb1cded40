namespace Platform.Contracts.Tensors;

/// <summary>
/// A .npy file that is malformed or uses a feature we do not accept. It is a <see cref="FormatException"/>
/// so callers that map bad input to a 400 / failed job need only one catch.
/// </summary>
public sealed class NpyFormatException : FormatException
{
    public NpyFormatException()
    {
    }

    public NpyFormatException(string message)
        : base(message)
    {
    }

    public NpyFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
