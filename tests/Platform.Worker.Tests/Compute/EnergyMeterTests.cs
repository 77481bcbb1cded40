using System.Globalization;
using Platform.Worker.Compute;

namespace Platform.Worker.Tests.Compute;

/// <summary>
/// Per-attempt energy from a powercap package counter, on a fake /sys/class/powercap whose counter the test
/// sets: energy between readings is shared among the attempts running through it, across the counter's wrap.
/// </summary>
public sealed class EnergyMeterTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("powercap-").FullName;
    private readonly string _counter;

    public EnergyMeterTests()
    {
        var zone = Directory.CreateDirectory(Path.Combine(_root, "intel-rapl:0")).FullName;
        File.WriteAllText(Path.Combine(zone, "name"), "package-0\n");
        File.WriteAllText(Path.Combine(zone, "max_energy_range_uj"), "10000000\n");
        _counter = Path.Combine(zone, "energy_uj");
        Set(joules: 1);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void Set(double joules) => File.WriteAllText(_counter, ((long)(joules * 1e6)).ToString(CultureInfo.InvariantCulture) + "\n");

    [Fact]
    public void Energy_between_readings_is_shared_equally_among_the_attempts_running_through_it()
    {
        var meter = new EnergyMeter(PowerSensor.TryOpen(_root));
        Assert.True(meter.Measures);

        var a = meter.Begin();   // counter at 1 J
        Set(3);
        var b = meter.Begin();   // a alone used 2 J
        Set(5);
        Assert.Equal(3, meter.End(a)!.Value, precision: 9);   // + half of the 2 J both used
        Set(6);
        Assert.Equal(2, meter.End(b)!.Value, precision: 9);   // 1 J shared, then 1 J alone
    }

    [Fact]
    public void A_counter_that_wraps_round_is_read_across_its_range()
    {
        var meter = new EnergyMeter(PowerSensor.TryOpen(_root));
        Set(9.5);
        var attempt = meter.Begin();
        Set(0.5);   // past the 10 J range and round again
        Assert.Equal(1, meter.End(attempt)!.Value, precision: 9);
    }

    [Fact]
    public void Without_a_readable_package_zone_nothing_is_measured()
    {
        Assert.Null(PowerSensor.TryOpen(Path.Combine(_root, "missing")));
        File.WriteAllText(_counter, "not a number");
        Assert.Null(PowerSensor.TryOpen(_root));
        var meter = new EnergyMeter(null);
        Assert.False(meter.Measures);
        Assert.Null(meter.End(meter.Begin()));
    }
}
