using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Platform.Contracts;

/// <summary>
/// Ids are prefixed strings ("job_...") so a log line or a URL says what it names, and a job id can never
/// be passed where an account id is expected.
/// </summary>
public interface ITypedId<TSelf> : IParsable<TSelf> where TSelf : struct, ITypedId<TSelf>
{
    static abstract string Prefix { get; }
    static abstract TSelf From(string value);
    string Value { get; }
}

public static class TypedId
{
    // 16 random bytes as 26 base32 characters: unguessable, URL-safe, fixed length.
    public static string NewValue(string prefix) => prefix + Base32.Encode(RandomNumberGenerator.GetBytes(16));

    public static bool IsValid(string prefix, [NotNullWhen(true)] string? value) =>
        value is not null
        && value.Length > prefix.Length
        && value.Length <= prefix.Length + 64
        && value.StartsWith(prefix, StringComparison.Ordinal)
        && value.AsSpan(prefix.Length).ContainsAnyExcept(Allowed) is false;

    private static readonly System.Buffers.SearchValues<char> Allowed =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyz0123456789-");

    public static T Parse<T>(string s) where T : struct, ITypedId<T> =>
        IsValid(T.Prefix, s) ? T.From(s) : throw new FormatException($"'{s}' is not a valid id: expected '{T.Prefix}' followed by lower-case letters and digits");

    public static bool TryParse<T>(string? s, out T result) where T : struct, ITypedId<T>
    {
        result = IsValid(T.Prefix, s) ? T.From(s) : default;
        return s is not null && IsValid(T.Prefix, s);
    }
}

public sealed class TypedIdJsonConverter<T> : JsonConverter<T> where T : struct, ITypedId<T>
{
    public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var s = reader.GetString();
        return TypedId.TryParse<T>(s, out var id) ? id : throw new JsonException($"'{s}' is not a valid {typeof(T).Name}");
    }

    public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options) => writer.WriteStringValue(value.Value);
}

[JsonConverter(typeof(TypedIdJsonConverter<JobId>))]
public readonly record struct JobId(string Value) : ITypedId<JobId>
{
    public static string Prefix => "job_";
    public static JobId New() => new(TypedId.NewValue(Prefix));
    public static JobId From(string value) => new(value);
    public static JobId Parse(string s, IFormatProvider? provider = null) => TypedId.Parse<JobId>(s);
    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out JobId result) => TypedId.TryParse(s, out result);
    public override string ToString() => Value;
}

[JsonConverter(typeof(TypedIdJsonConverter<AttemptId>))]
public readonly record struct AttemptId(string Value) : ITypedId<AttemptId>
{
    public static string Prefix => "att_";
    public static AttemptId New() => new(TypedId.NewValue(Prefix));
    public static AttemptId From(string value) => new(value);
    public static AttemptId Parse(string s, IFormatProvider? provider = null) => TypedId.Parse<AttemptId>(s);
    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out AttemptId result) => TypedId.TryParse(s, out result);
    public override string ToString() => Value;
}

[JsonConverter(typeof(TypedIdJsonConverter<WorkerId>))]
public readonly record struct WorkerId(string Value) : ITypedId<WorkerId>
{
    public static string Prefix => "wrk_";
    public static WorkerId New() => new(TypedId.NewValue(Prefix));
    public static WorkerId From(string value) => new(value);
    public static WorkerId Parse(string s, IFormatProvider? provider = null) => TypedId.Parse<WorkerId>(s);
    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out WorkerId result) => TypedId.TryParse(s, out result);
    public override string ToString() => Value;
}

[JsonConverter(typeof(TypedIdJsonConverter<AccountId>))]
public readonly record struct AccountId(string Value) : ITypedId<AccountId>
{
    public static string Prefix => "acc_";
    public static AccountId New() => new(TypedId.NewValue(Prefix));
    public static AccountId From(string value) => new(value);
    public static AccountId Parse(string s, IFormatProvider? provider = null) => TypedId.Parse<AccountId>(s);
    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out AccountId result) => TypedId.TryParse(s, out result);
    public override string ToString() => Value;
}

internal static class Base32
{
    private const string Alphabet = "abcdefghijklmnopqrstuvwxyz234567";

    public static string Encode(ReadOnlySpan<byte> data)
    {
        var output = new char[(data.Length * 8 + 4) / 5];
        int buffer = 0, bits = 0, o = 0;
        foreach (var b in data)
        {
            buffer = (buffer << 8) | b;
            bits += 8;
            while (bits >= 5)
            {
                output[o++] = Alphabet[(buffer >> (bits - 5)) & 31];
                bits -= 5;
            }
        }
        if (bits > 0)
            output[o++] = Alphabet[(buffer << (5 - bits)) & 31];
        return new string(output, 0, o);
    }
}
