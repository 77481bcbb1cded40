using Platform.Worker.Node;

namespace Platform.Worker.Compute;

/// <summary>
/// Measures the energy of each attempt from the package energy counter (RAPL through powercap) where the machine
/// exposes one. The counter covers the whole package, so the energy between any two readings is shared equally
/// among the attempts running in that interval: each start and end of an attempt is a reading. Without a sensor
/// every reading is null and attempts fall back to an estimate from calibrated power and time.
/// </summary>
public sealed class EnergyMeter
{
    private readonly PowerSensor? _sensor;
    private readonly Lock _lock = new();
    private readonly Dictionary<Metering, double> _running = [];
    private double _last;

    public EnergyMeter(PowerSensor? sensor) => _sensor = sensor;

    public static EnergyMeter For(WorkerOptions options) => new(PowerSensor.TryOpen(options.PowerSensorRoot));

    /// <summary>Whether attempts are measured rather than estimated.</summary>
    public bool Measures => _sensor is not null;

    /// <summary>One attempt being metered.</summary>
    public sealed class Metering;

    public Metering Begin()
    {
        var metering = new Metering();
        if (_sensor is null)
            return metering;
        lock (_lock)
        {
            Advance();
            _running[metering] = 0;
        }
        return metering;
    }

    /// <summary>The joules the attempt used, or null without a sensor (or when the counter could not be read).</summary>
    public double? End(Metering metering)
    {
        if (_sensor is null)
            return null;
        lock (_lock)
        {
            if (!Advance())
            {
                _running.Remove(metering);
                return null;
            }
            return _running.Remove(metering, out var joules) ? joules : null;
        }
    }

    // Shares the energy since the last reading among the attempts that ran through it.
    private bool Advance()
    {
        if (_sensor!.ReadJoules() is not double now)
            return false;
        var used = now - _last;
        // The counter wraps at its range; a reading below the last one went round once.
        if (used < 0)
            used += _sensor.RangeJoules ?? 0;
        if (_running.Count > 0 && used > 0)
        {
            var share = used / _running.Count;
            foreach (var attempt in _running.Keys.ToList())
                _running[attempt] += share;
        }
        _last = now;
        return true;
    }
}
