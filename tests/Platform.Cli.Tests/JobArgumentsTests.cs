using Platform.Cli.Commands;
using Platform.Contracts;

namespace Platform.Cli.Tests;

public sealed class JobArgumentsTests : IDisposable
{
    private static readonly string SomeCid = Cid.Compute("hello"u8).Value;
    private readonly string _file = Path.GetTempFileName();

    public void Dispose() => File.Delete(_file);

    [Fact]
    public void Input_that_is_a_CID_is_used_as_it_is()
    {
        var input = JobArguments.ParseInput($"a={SomeCid}");
        Assert.Equal(new JobInput("a", SomeCid, null), input);
    }

    [Fact]
    public void Input_that_is_a_file_is_to_be_pinned()
    {
        var input = JobArguments.ParseInput($"points={_file}");
        Assert.Equal(new JobInput("points", null, Path.GetFullPath(_file)), input);
    }

    [Fact]
    public void Input_value_may_contain_equals_signs()
    {
        var dir = Directory.CreateTempSubdirectory();
        try
        {
            var path = Path.Combine(dir.FullName, "x=1.npy");
            File.WriteAllBytes(path, [1]);
            Assert.Equal(path, JobArguments.ParseInput($"x={path}").File);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("a", "is not name=FILE or name=CID")]
    [InlineData("=x", "is not name=FILE or name=CID")]
    [InlineData("a=", "is not name=FILE or name=CID")]
    [InlineData("a b=x", "is not a name")]
    [InlineData("a=/no/such/file.npy", "no file '/no/such/file.npy'")]
    [InlineData("a=bafkreinotacid", "is not a valid CID")]
    public void Bad_input_is_a_usage_error_that_says_why(string text, string expected)
    {
        var error = Assert.Throws<UsageException>(() => JobArguments.ParseInput(text));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("k=16", "k", "16")]
    [InlineData("metric=cosine", "metric", "cosine")]
    [InlineData("learningRate=0.5", "learningRate", "0.5")]
    [InlineData("expr=a=b", "expr", "a=b")]
    public void Param_is_split_at_the_first_equals_sign(string text, string name, string value)
    {
        Assert.Equal(new KeyValuePair<string, string>(name, value), JobArguments.ParseParam(text));
    }

    [Theory]
    [InlineData("k")]
    [InlineData("=3")]
    [InlineData("k=")]
    public void Param_without_name_or_value_is_a_usage_error(string text)
    {
        Assert.Throws<UsageException>(() => JobArguments.ParseParam(text));
    }

    [Fact]
    public void Submit_collects_repeated_inputs_and_params()
    {
        var parse = Parse($"jobs submit kmeans --input a={SomeCid} -i b={_file} --param k=4 -p seed=7 --replicas 2 --max-price 1.5 --region eu-west --wait");
        Assert.Empty(parse.Errors);
        var inputs = Value<List<JobInput>>(parse, "--input");
        Assert.Equal(["a", "b"], inputs.Select(i => i.Name));
        Assert.Equal(SomeCid, inputs[0].Cid);
        Assert.Equal(Path.GetFullPath(_file), inputs[1].File);
        Assert.Equal(["k=4", "seed=7"], Value<List<KeyValuePair<string, string>>>(parse, "--param").Select(p => $"{p.Key}={p.Value}"));
        Assert.Equal(2, parse.GetValue<int?>("--replicas"));
        Assert.Equal(1.5m, parse.GetValue<decimal?>("--max-price"));
        Assert.True(parse.GetValue<bool>("--wait"));
    }

    [Fact]
    public void Submit_reports_every_bad_argument_and_a_repeated_name()
    {
        var parse = Parse($"jobs submit vector-add --input a={SomeCid} --input a={SomeCid} --input b=missing.npy --param nonsense");
        var errors = parse.Errors.Select(e => e.Message).ToList();
        Assert.Contains(errors, e => e.Contains("a is given twice", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("no file 'missing.npy'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("'nonsense' is not k=v", StringComparison.Ordinal));
    }

    [Fact]
    public void Submit_needs_at_least_one_input()
    {
        Assert.NotEmpty(Parse("jobs submit vector-add").Errors);
    }

    [Fact]
    public async Task Usage_errors_print_one_line_each_and_exit_2()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var code = await Cli.RunAsync(["jobs", "submit", "vector-add", "--input", "a"], CliHost.Plain(stdout, stderr, new Dictionary<string, string?>()));
        Assert.Equal(Cli.Usage, code);
        Assert.Equal("", stdout.ToString());
        Assert.StartsWith("error: --input 'a' is not name=FILE or name=CID", stderr.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr.ToString(), StringComparison.Ordinal);
    }

    private static System.CommandLine.ParseResult Parse(string line) =>
        Cli.Build(CliHost.Plain(TextWriter.Null, TextWriter.Null, new Dictionary<string, string?>())).Parse(line);

    private static T Value<T>(System.CommandLine.ParseResult parse, string name) => parse.GetValue<T>(name)!;
}
