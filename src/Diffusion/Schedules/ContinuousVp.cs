using static TorchSharp.torch;

namespace Diffusion.Schedules;

/// <summary>
/// The continuous-time view of a discrete VP schedule (METHODS.md §6, as in DPM-Solver's discrete
/// NoiseScheduleVP): log α_n = ½·log ᾱ_n is placed at t_n = (n+1)/N, n = 0 … N−1, and log α(t) is
/// piecewise linear in t between those points, extrapolated linearly outside them. Then
/// σ(t) = √(1 − α(t)²), λ(t) = log α(t) − log σ(t). Sampling runs from t = 1 to t = 1/N and the
/// network's discrete time input is (t − 1/N)·N, a real number.
/// All arithmetic is float64.
/// </summary>
public sealed class ContinuousVp
{
    private readonly double[] _t;        // t_n = (n+1)/N, ascending
    private readonly double[] _logAlpha; // ½ log ᾱ_n, descending
    private readonly double[] _alphaBar; // ᾱ_n
    // The same points in reverse (log α ascending), for the inverse map.
    private readonly double[] _logAlphaAscending;
    private readonly double[] _tForLogAlphaAscending;

    public int N { get; }

    /// <summary>End of the sampling interval (t = 1).</summary>
    public double TMax => 1.0;
    /// <summary>Start of the sampling interval, t = 1/N (the first discrete step).</summary>
    public double TMin => 1.0 / N;

    /// <summary>
    /// Number of tail steps of the discrete schedule left out of this view (see <see cref="ForSolver"/>);
    /// 0 for a view built with the constructor.
    /// </summary>
    public int DroppedTail { get; private init; }

    /// <summary>The λ below which <see cref="ForSolver"/> drops tail steps (DPM-Solver's <c>numerical_clip_alpha</c>).</summary>
    public const double SolverMinLambda = -5.1;

    public ContinuousVp(NoiseSchedule schedule) : this(schedule.AlphasCumprod) { }

    /// <summary>
    /// The view an ODE solver (DPM-Solver) integrates over. Where the schedule's last steps reach
    /// λ_n &lt; <paramref name="minLambda"/> (the cosine schedule: its final ᾱ are nearly 0 and log σ/α is
    /// numerically unstable there), those tail steps are dropped, as DPM-Solver's reference code does
    /// (<c>numerical_clip_alpha</c>, λ = −5.1); schedules whose λ stays above it (linear, T = 1000:
    /// λ_999 ≈ −5.06) are unchanged.
    /// <para>
    /// After a drop the view is that of the kept steps 0 … N'−1 alone: <see cref="N"/> = N', the grid is
    /// t_n = (n+1)/N', sampling runs from t = 1 (step N'−1) to t = 1/N' (step 0), and the network's time is
    /// (t − 1/N')·N', which is n at every kept step — the network is never asked about a time it was not
    /// trained on, and never about a time shifted from the one whose ᾱ the solver uses. (The reference code
    /// keeps multiplying by 1000 after the drop, so its network times are n·1000/N', slightly off the
    /// ᾱ it integrates with; we do not reproduce that.)
    /// </para>
    /// </summary>
    public static ContinuousVp ForSolver(NoiseSchedule schedule, double minLambda = SolverMinLambda)
    {
        var ab = schedule.AlphasCumprod;
        int keep = ab.Length;
        while (keep > 0 && LambdaOfAlphaBar(ab[keep - 1]) < minLambda) keep--;
        if (keep < 2)
            throw new ArgumentException($"the schedule's λ is below {minLambda} at all but {keep} of its {ab.Length} steps; nothing is left to integrate over");
        return new ContinuousVp(ab.Take(keep).ToArray()) { DroppedTail = ab.Length - keep };
    }

    /// <summary>λ = ½·log(ᾱ/(1 − ᾱ)) of a discrete ᾱ.</summary>
    public static double LambdaOfAlphaBar(double alphaBar) => 0.5 * (Math.Log(alphaBar) - Math.Log(1 - alphaBar));

    public ContinuousVp(IReadOnlyList<double> alphasCumprod)
    {
        N = alphasCumprod.Count;
        if (N < 2) throw new ArgumentException("the continuous view needs at least two steps");
        _alphaBar = alphasCumprod.ToArray();
        _t = new double[N];
        _logAlpha = new double[N];
        for (int n = 0; n < N; n++)
        {
            _t[n] = (n + 1.0) / N;
            _logAlpha[n] = 0.5 * Math.Log(alphasCumprod[n]);
        }
        _logAlphaAscending = Enumerable.Reverse(_logAlpha).ToArray();
        _tForLogAlphaAscending = Enumerable.Reverse(_t).ToArray();
    }

    /// <summary>log α(t), piecewise linear in t (linear extrapolation outside [1/N, 1]).</summary>
    public double LogAlpha(double t) => Interpolate(t, _t, _logAlpha);

    public double Alpha(double t) => Math.Exp(LogAlpha(t));

    /// <summary>σ(t) = √(1 − α(t)²).</summary>
    public double Sigma(double t) => Math.Sqrt(-ExpM1(2 * LogAlpha(t)));

    /// <summary>λ(t) = log α − log σ (half the log-SNR).</summary>
    public double Lambda(double t)
    {
        double la = LogAlpha(t);
        return la - 0.5 * Math.Log(-ExpM1(2 * la));
    }

    /// <summary>ᾱ(t) = α(t)², equal to the discrete ᾱ_n at t = (n+1)/N.</summary>
    public double AlphaBar(double t) => Math.Exp(2 * LogAlpha(t));

    /// <summary>The t with λ(t) = <paramref name="lambda"/>: log α = −½·log(1 + e^{−2λ}), then t by interpolation of the inverse map.</summary>
    public double InverseLambda(double lambda)
    {
        double logAlpha = -0.5 * LogAddExp0(-2 * lambda);
        return Interpolate(logAlpha, _logAlphaAscending, _tForLogAlphaAscending);
    }

    /// <summary>The network's time input for continuous time t: (t − 1/N)·N.</summary>
    public double ModelTime(double t) => (t - 1.0 / N) * N;

    /// <summary>Continuous time of discrete step n (inverse of <see cref="ModelTime"/>).</summary>
    public double TimeOfStep(double n) => (n + 1.0) / N;

    /// <summary>ᾱ at a real-valued discrete time u: the discrete ᾱ_n itself (bit for bit) at an integer u = n of the grid, interpolated otherwise.</summary>
    public double AlphaBarAtStep(double u) =>
        u >= 0 && u < N && u == Math.Floor(u) ? _alphaBar[(int)u] : AlphaBar(TimeOfStep(u));

    /// <summary>The step at continuous time t for a batch like <paramref name="like"/>: network time (t − 1/N)·N, α(t), σ(t).</summary>
    public TimeStep Step(double t, Tensor like) => TimeStep.Uniform(ModelTime(t), Alpha(t), Sigma(t), like);

    /// <summary>The step at half log-SNR λ: network time of t = λ⁻¹(λ), α = √(1 − σ²), σ = 1/√(1 + e^{2λ}) (exact in λ, for ODE solvers in λ).</summary>
    public TimeStep StepAtLambda(double lambda, Tensor like)
    {
        double sigma = 1 / Math.Sqrt(1 + Math.Exp(2 * lambda));
        return TimeStep.Uniform(ModelTime(InverseLambda(lambda)), Math.Sqrt(1 - sigma * sigma), sigma, like);
    }

    /// <summary>The step at a real-valued network time u (0 … N−1): ᾱ as <see cref="AlphaBarAtStep"/> gives it (exact at integers).</summary>
    public TimeStep StepAtModelTime(double u, Tensor like)
    {
        double ab = AlphaBarAtStep(u);
        return TimeStep.Uniform(u, Math.Sqrt(ab), Math.Sqrt(1 - ab), like);
    }

    /// <summary>Per-row steps at real-valued network times <paramref name="u"/> (one per row of <paramref name="like"/>), α and σ shaped [N, 1, …].</summary>
    public TimeStep StepsAtModelTimes(IReadOnlyList<double> u, Tensor like)
    {
        var ab = u.Select(AlphaBarAtStep).ToArray();
        var shape = new long[like.dim()];
        Array.Fill(shape, 1L);
        shape[0] = -1;
        return new TimeStep(tensor(u.ToArray(), dtype: ScalarType.Float64, device: like.device),
            tensor(ab.Select(Math.Sqrt).ToArray(), dtype: like.dtype, device: like.device).reshape(shape),
            tensor(ab.Select(a => Math.Sqrt(1 - a)).ToArray(), dtype: like.dtype, device: like.device).reshape(shape));
    }

    /// <summary>e^x − 1, accurate for small |x|.</summary>
    internal static double ExpM1(double x) => Math.Abs(x) < 1e-5 ? x + 0.5 * x * x + x * x * x / 6.0 : Math.Exp(x) - 1.0;

    private static double LogAddExp0(double x) => x > 0 ? x + Math.Log(1 + Math.Exp(-x)) : Math.Log(1 + Math.Exp(x));

    /// <summary>Piecewise-linear interpolation through (xs, ys) (xs ascending) with linear extrapolation from the end segments.</summary>
    internal static double Interpolate(double x, double[] xs, double[] ys)
    {
        int n = xs.Length;
        int i;
        if (x == xs[n - 1]) return ys[n - 1];
        if (x <= xs[0]) i = 0;
        else if (x > xs[n - 1]) i = n - 2;
        else
        {
            int idx = Array.BinarySearch(xs, x);
            if (idx >= 0) return ys[idx];
            i = ~idx - 1;
        }
        double x0 = xs[i], x1 = xs[i + 1];
        return ys[i] + (ys[i + 1] - ys[i]) * (x - x0) / (x1 - x0);
    }
}
