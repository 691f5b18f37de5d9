using static TorchSharp.torch;

namespace Diffusion.Schedules;

/// <summary>
/// The σ view of a discrete VP schedule (the parameterisation of k-diffusion and EDM): x_σ = x0 + σ·ε with
/// σ_n = √((1 − ᾱ_n)/ᾱ_n), so that x_σ = x_t/α_t. Samplers in σ (Euler, Heun) integrate dx/dσ = ε̂ in it and ask
/// the ε-model at x_t = x_σ/√(σ² + 1) and at the network time found by interpolating log σ linearly between the
/// discrete steps (k-diffusion's <c>DiscreteSchedule.sigma_to_t</c>, unquantised). All arithmetic is float64.
/// </summary>
public sealed class SigmaView
{
    private readonly double[] logSigmas;   // ascending with the step index

    public SigmaView(NoiseSchedule schedule)
    {
        Sigmas = schedule.AlphasCumprod.Select(ab => Math.Sqrt((1 - ab) / ab)).ToArray();
        logSigmas = Sigmas.Select(s => Math.Log(s)).ToArray();
    }

    /// <summary>σ_n of every discrete step n = 0 … T−1 (ascending).</summary>
    public double[] Sigmas { get; }
    public double SigmaMin => Sigmas[0];
    public double SigmaMax => Sigmas[^1];

    /// <summary>
    /// The network time of noise level σ: the real index t with log σ interpolated linearly between log σ_⌊t⌋ and
    /// log σ_⌈t⌉, clamped to [0, T−1] (k-diffusion's <c>sigma_to_t</c>).
    /// </summary>
    public double TimeOf(double sigma)
    {
        double ls = Math.Log(sigma);
        int n = logSigmas.Length;
        int low = 0;
        for (int i = 0; i < n; i++) if (ls >= logSigmas[i]) low = i;   // the last index whose log σ is ≤ log σ
        low = Math.Min(low, n - 2);
        double lo = logSigmas[low], hi = logSigmas[low + 1];
        double w = Math.Clamp((lo - ls) / (lo - hi), 0, 1);
        return (1 - w) * low + w * (low + 1);
    }

    /// <summary>The step at noise level σ for a batch like <paramref name="like"/>: network time <see cref="TimeOf"/>(σ), α = 1/√(σ² + 1), σ_VP = σ/√(σ² + 1).</summary>
    public TimeStep Step(double sigma, Tensor like)
    {
        double c = 1 / Math.Sqrt(sigma * sigma + 1);
        return TimeStep.Uniform(TimeOf(sigma), c, sigma * c, like);
    }

    /// <summary>
    /// Karras et al.'s noise levels (k-diffusion's <c>get_sigmas_karras</c>): σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ
    /// for i = 0 … n−1, followed by a final 0.
    /// </summary>
    public static double[] Karras(int n, double sigmaMin, double sigmaMax, double rho = 7.0)
    {
        if (n < 1) throw new UserError($"--steps must be at least 1, got {n}");
        double a = Math.Pow(sigmaMax, 1 / rho), b = Math.Pow(sigmaMin, 1 / rho);
        var r = new double[n + 1];
        for (int i = 0; i < n; i++) r[i] = Math.Pow(a + (n == 1 ? 0 : i / (double)(n - 1)) * (b - a), rho);
        r[n] = 0;
        return r;
    }
}
