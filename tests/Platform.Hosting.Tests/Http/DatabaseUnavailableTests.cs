using Npgsql;
using Platform.Hosting.Http;

namespace Platform.Hosting.Tests.Http;

/// <summary>
/// Which database errors are the database being unavailable (503 with Retry-After: send it again later) and which are
/// faults to report (500). The failover cases are what a multi-host connection string meets while no host is the primary.
/// </summary>
public sealed class DatabaseUnavailableTests
{
    [Fact]
    public void No_primary_among_the_hosts_a_standby_refusing_a_write_and_a_lost_connection_are_unavailable()
    {
        Assert.True(Problems.DatabaseUnavailable(new NpgsqlException("No suitable host was found.", new AggregateException())));
        Assert.True(Problems.DatabaseUnavailable(new NpgsqlException("Exception while reading from stream", new IOException("reset"))));
        Assert.True(Problems.DatabaseUnavailable(Postgres("25006")));
        Assert.True(Problems.DatabaseUnavailable(Postgres("57P01")));
        Assert.True(Problems.DatabaseUnavailable(Postgres("08006")));
        Assert.True(Problems.DatabaseUnavailable(new InvalidOperationException("wrapped", Postgres("55000"))));
    }

    [Fact]
    public void A_statement_error_or_a_misuse_of_a_connection_is_a_fault_not_an_outage()
    {
        Assert.False(Problems.DatabaseUnavailable(Postgres("23505")));
        Assert.False(Problems.DatabaseUnavailable(Postgres("57014")));
        Assert.False(Problems.DatabaseUnavailable(new NpgsqlOperationInProgressException(new NpgsqlCommand("select 1"))));
        Assert.False(Problems.DatabaseUnavailable(new NpgsqlException("Unknown message code: 0")));
        Assert.False(Problems.DatabaseUnavailable(new InvalidOperationException("a bug")));
    }

    private static PostgresException Postgres(string sqlState) => new("message", "ERROR", "ERROR", sqlState);
}
