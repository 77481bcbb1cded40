using System.Text.Json;

namespace Platform.Contracts.Tests;

public sealed class TypedIdTests
{
    [Fact]
    public void New_ids_carry_their_prefix_and_are_unique()
    {
        var ids = Enumerable.Range(0, 1000).Select(_ => JobId.New().Value).ToHashSet();

        Assert.Equal(1000, ids.Count);
        Assert.All(ids, id => Assert.StartsWith("job_", id, StringComparison.Ordinal));
        Assert.All(ids, id => Assert.True(JobId.TryParse(id, null, out _)));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("job_")]
    [InlineData("acc_abc")]
    [InlineData("job_ABC")]
    [InlineData("job_abc/../x")]
    [InlineData("job_abc def")]
    public void Malformed_or_foreign_ids_do_not_parse(string? value)
    {
        Assert.False(JobId.TryParse(value, null, out _));
    }

    [Fact]
    public void Ids_serialize_as_plain_strings()
    {
        var id = AccountId.New();

        var json = JsonSerializer.Serialize(new { id });

        Assert.Equal($"{{\"id\":\"{id.Value}\"}}", json);
        Assert.Equal(id, JsonSerializer.Deserialize<AccountId>($"\"{id.Value}\""));
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<AccountId>("\"job_x\""));
    }
}
