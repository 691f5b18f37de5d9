using Diffusion.Config;
using static TorchSharp.torch;

namespace Diffusion.Training;

/// <summary>
/// E-TSDM's time sharing (METHODS.md §3): [0, t̃) is split into n equal sub-intervals
/// [t_{i−1}, t_i), t_i = i·t̃/n, and the network's time condition is f(t) = t_{i−1} (the left end
/// of t's sub-interval) for t &lt; t̃, f(t) = t otherwise. The noise level is untouched: only what
/// the network is told changes. f applies to real-valued times too, in the network's units.
/// </summary>
public sealed class TimeSharing
{
    /// <summary>The registry entry (<see cref="Remedies"/>).</summary>
    public static readonly Remedy Remedy = new("time-sharing", ["etsdm", "e-tsdm"], "Lipschitz singularity near t = 0 (E-TSDM)",
        ["time-sharing.intervals", "time-sharing.threshold"], ["time-sharing.intervals=5"], [],
        c => c.TimeSharing.Intervals > 0, c => $"time-sharing(n={c.TimeSharing.Intervals}, threshold={c.TimeSharing.ThresholdFor(c.Schedule.Length)})");

    public int Intervals { get; }
    public double Threshold { get; }
    private readonly double width;

    public TimeSharing(int intervals, double threshold)
    {
        if (intervals < 1) throw new ArgumentException("time sharing needs at least one interval");
        if (!(threshold > 0)) throw new ArgumentException("time sharing needs a positive threshold");
        Intervals = intervals;
        Threshold = threshold;
        width = threshold / intervals;
    }

    /// <summary>The time sharing a config asks for, or null when it is off.</summary>
    public static TimeSharing? From(RunConfig cfg) =>
        cfg.TimeSharing.Intervals > 0 ? new TimeSharing(cfg.TimeSharing.Intervals, cfg.TimeSharing.ThresholdFor(cfg.Schedule.Length)) : null;

    /// <summary>f(t).</summary>
    public double Map(double t)
    {
        if (t >= Threshold) return t;
        double i = Math.Floor(t / width);
        i = Math.Clamp(i, 0, Intervals - 1);
        // Guard against rounding of t/width just below an interval's left end.
        if ((i + 1) * width <= t && i + 1 < Intervals) i++;
        return i * width;
    }

    /// <summary>f applied to every element of <paramref name="t"/> (any dtype; float64 result).</summary>
    public Tensor Map(Tensor t)
    {
        var values = t.to_type(ScalarType.Float64).cpu().data<double>().ToArray();
        for (int i = 0; i < values.Length; i++) values[i] = Map(values[i]);
        return tensor(values, t.shape, dtype: ScalarType.Float64).to(t.device);
    }
}
