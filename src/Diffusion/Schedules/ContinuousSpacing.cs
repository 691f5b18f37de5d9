namespace Diffusion.Schedules;

/// <summary>
/// Where a continuous-time solver (DPM-Solver) puts its steps between t = 1 and t = 1/N — the
/// continuous counterpart of <see cref="Respacing"/> (DPM-Solver's <c>skip_type</c>):
/// <list type="bullet">
/// <item><c>time-uniform</c>: uniform in t (the DPM-Solver authors recommend it for high-resolution images);</item>
/// <item><c>logSNR</c>: uniform in λ = log(α/σ), mapped back through the inverse of λ (recommended for low-resolution data);</item>
/// <item><c>time-quadratic</c>: uniform in √t, then squared (DDIM's "quad" spacing, dense near the data end).</item>
/// </list>
/// </summary>
public static class ContinuousSpacing
{
    public static readonly string[] Names = ["time-uniform", "logSNR", "time-quadratic"];

    /// <summary>
    /// <paramref name="intervals"/> + 1 times from <paramref name="tStart"/> down to <paramref name="tEnd"/>
    /// (both included exactly), spaced by <paramref name="skip"/> on the view <paramref name="vp"/>.
    /// </summary>
    public static double[] Times(string skip, ContinuousVp vp, double tStart, double tEnd, int intervals)
    {
        if (intervals < 1) throw new ArgumentException($"a time grid needs at least one interval, got {intervals}");
        var r = new double[intervals + 1];
        switch (skip)
        {
            case "time-uniform":
                for (int i = 0; i <= intervals; i++) r[i] = tStart + (tEnd - tStart) * i / intervals;
                break;
            case "logSNR":
                double l0 = vp.Lambda(tStart), l1 = vp.Lambda(tEnd);
                for (int i = 0; i <= intervals; i++) r[i] = vp.InverseLambda(l0 + (l1 - l0) * i / intervals);
                break;
            case "time-quadratic":
                double a = Math.Sqrt(tStart), b = Math.Sqrt(tEnd);
                for (int i = 0; i <= intervals; i++) { double u = a + (b - a) * i / intervals; r[i] = u * u; }
                break;
            default:
                throw new UserError($"unknown skip type '{skip}': expected one of {string.Join(", ", Names)}");
        }
        r[0] = tStart;
        r[intervals] = tEnd;
        return r;
    }
}
