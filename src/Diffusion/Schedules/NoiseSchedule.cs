using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Schedules;

/// <summary>
/// A discrete variance-preserving noise schedule: β_t for t = 0 … T−1 and everything derived
/// from it (METHODS.md §0), computed once in float64. The schedule is data: samplers and losses ask
/// it, respacing makes a new one.
/// </summary>
public sealed class NoiseSchedule
{
    /// <summary>Number of steps T.</summary>
    public int T => Betas.Length;
    public double[] Betas { get; }
    public double[] Alphas { get; }
    /// <summary>ᾱ_t = ∏_{s≤t} α_s.</summary>
    public double[] AlphasCumprod { get; }
    /// <summary>ᾱ_{t−1}, with ᾱ_{−1} := 1.</summary>
    public double[] AlphasCumprodPrev { get; }
    public double[] SqrtAlphasCumprod { get; }
    public double[] SqrtOneMinusAlphasCumprod { get; }
    /// <summary>SNR_t = ᾱ_t / (1 − ᾱ_t).</summary>
    public double[] Snr { get; }
    /// <summary>β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t); zero at t = 0.</summary>
    public double[] PosteriorVariance { get; }
    /// <summary>Coefficient of x0 in the posterior mean: √ᾱ_{t−1} β_t / (1 − ᾱ_t).</summary>
    public double[] PosteriorMeanCoefX0 { get; }
    /// <summary>Coefficient of x_t in the posterior mean: √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t).</summary>
    public double[] PosteriorMeanCoefXt { get; }

    /// <summary>
    /// For a respaced schedule, the original time of each of its steps (what the network is given);
    /// for an original schedule, the identity 0 … T−1.
    /// </summary>
    public int[] TimestepMap { get; }

    public NoiseSchedule(double[] betas) : this(betas, Enumerable.Range(0, betas.Length).ToArray(), null) { }

    // alphasCumprod, when given, is kept exactly (a respaced schedule keeps ᾱ of the visited steps bit for bit).
    private NoiseSchedule(double[] betas, int[] timestepMap, double[]? alphasCumprod)
    {
        if (betas.Length == 0) throw new ArgumentException("a schedule needs at least one β");
        for (int i = 0; i < betas.Length; i++)
            if (!(betas[i] > 0 && betas[i] <= 1))
                throw new ArgumentException($"β[{i}] = {betas[i]} is outside (0, 1]");
        Betas = (double[])betas.Clone();
        TimestepMap = timestepMap;
        int n = betas.Length;
        Alphas = new double[n];
        AlphasCumprod = new double[n];
        AlphasCumprodPrev = new double[n];
        SqrtAlphasCumprod = new double[n];
        SqrtOneMinusAlphasCumprod = new double[n];
        Snr = new double[n];
        PosteriorVariance = new double[n];
        PosteriorMeanCoefX0 = new double[n];
        PosteriorMeanCoefXt = new double[n];
        double prod = 1.0;
        for (int t = 0; t < n; t++)
        {
            Alphas[t] = 1.0 - Betas[t];
            AlphasCumprodPrev[t] = prod;
            prod = alphasCumprod is null ? prod * Alphas[t] : alphasCumprod[t];
            AlphasCumprod[t] = prod;
            SqrtAlphasCumprod[t] = Math.Sqrt(prod);
            SqrtOneMinusAlphasCumprod[t] = Math.Sqrt(1.0 - prod);
            Snr[t] = prod / (1.0 - prod);
            double oneMinus = 1.0 - prod;
            PosteriorVariance[t] = Betas[t] * (1.0 - AlphasCumprodPrev[t]) / oneMinus;
            PosteriorMeanCoefX0[t] = Math.Sqrt(AlphasCumprodPrev[t]) * Betas[t] / oneMinus;
            PosteriorMeanCoefXt[t] = Math.Sqrt(Alphas[t]) * (1.0 - AlphasCumprodPrev[t]) / oneMinus;
        }
        Fingerprint = ComputeFingerprint(Betas);
    }

    /// <summary>
    /// "sha256:" and the first 16 hex digits of SHA-256 over T (int32, little-endian) and β (float64, little-endian):
    /// checkpoints store it, so a schedule rebuilt from a config whose formula has since changed is refused, not used.
    /// </summary>
    public string Fingerprint { get; }

    private static string ComputeFingerprint(double[] betas)
    {
        var bytes = new byte[4 + 8 * betas.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bytes, betas.Length);
        for (int i = 0; i < betas.Length; i++)
            System.Buffers.Binary.BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(4 + 8 * i), betas[i]);
        return "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes))[..16];
    }

    /// <summary>β from 1e-4 to 0.02 over T steps, both ends scaled by 1000/T (DDPM; improved-diffusion).</summary>
    public static NoiseSchedule Linear(int T, double betaStart = 1e-4, double betaEnd = 0.02)
    {
        CheckT(T);
        double scale = 1000.0 / T;
        return new NoiseSchedule(Linspace(scale * betaStart, scale * betaEnd, T));
    }

    /// <summary>
    /// Cosine schedule (Nichol &amp; Dhariwal): ᾱ(t) = f(t)/f(0), f(t) = cos²(((t/T)+s)/(1+s)·π/2),
    /// β_t = 1 − ᾱ((t+1)/T)/ᾱ(t/T), clipped to at most <paramref name="maxBeta"/>.
    /// </summary>
    public static NoiseSchedule Cosine(int T, double s = 0.008, double maxBeta = 0.999)
    {
        CheckT(T);
        double F(double u) { double c = Math.Cos((u + s) / (1 + s) * Math.PI / 2); return c * c; }
        var betas = new double[T];
        for (int i = 0; i < T; i++)
            betas[i] = Math.Min(1.0 - F((i + 1.0) / T) / F((double)i / T), maxBeta);
        return new NoiseSchedule(betas);
    }

    /// <summary>β = √β linearly spaced, squared (Stable Diffusion's "scaled_linear"); defaults 0.00085 … 0.012.</summary>
    public static NoiseSchedule ScaledLinear(int T, double betaStart = 0.00085, double betaEnd = 0.012)
    {
        CheckT(T);
        return new NoiseSchedule(Linspace(Math.Sqrt(betaStart), Math.Sqrt(betaEnd), T).Select(b => b * b).ToArray());
    }

    /// <summary>β = sigmoid(linspace(−6, 6, T))·(end − start) + start (GeoDiff's sigmoid schedule).</summary>
    public static NoiseSchedule Sigmoid(int T, double betaStart = 1e-4, double betaEnd = 0.02)
    {
        CheckT(T);
        return new NoiseSchedule(Linspace(-6, 6, T).Select(u => 1.0 / (1.0 + Math.Exp(-u)) * (betaEnd - betaStart) + betaStart).ToArray());
    }

    /// <summary>
    /// A new schedule over a subset of this one's steps (improved-diffusion's respacing), the one respacing
    /// mechanism of every discrete sampler: ᾱ is kept at the chosen steps (bit for bit) and
    /// β_i = 1 − ᾱ_{t_i}/ᾱ_{t_{i−1}}. Its <see cref="TimestepMap"/> gives the original times, which is what the
    /// network is given. Respacing with every step returns this schedule itself.
    /// </summary>
    public NoiseSchedule Respace(IReadOnlyList<int> useTimesteps)
    {
        var steps = useTimesteps.Distinct().OrderBy(x => x).ToArray();
        if (steps.Length == 0) throw new ArgumentException("respacing needs at least one timestep");
        if (steps[0] < 0 || steps[^1] >= T) throw new ArgumentException($"respaced timesteps must lie in [0, {T})");
        if (steps.Length == T) return this;
        var betas = new double[steps.Length];
        double last = 1.0;
        for (int i = 0; i < steps.Length; i++)
        {
            double ab = AlphasCumprod[steps[i]];
            betas[i] = 1.0 - ab / last;
            last = ab;
        }
        return new NoiseSchedule(betas, steps.Select(s => TimestepMap[s]).ToArray(), steps.Select(s => AlphasCumprod[s]).ToArray());
    }

    /// <summary>Step i of this schedule for a batch like <paramref name="like"/>: the network time <see cref="TimestepMap"/>[i] with α = √ᾱ_i, σ = √(1 − ᾱ_i).</summary>
    public TimeStep Step(int i, Tensor like) => TimeStep.Uniform(TimestepMap[i], SqrtAlphasCumprod[i], SqrtOneMinusAlphasCumprod[i], like);

    /// <summary>Per-example steps at integer indices <paramref name="t"/> ([N], any integer dtype) for x0 of dtype <paramref name="dtype"/> and rank <paramref name="rank"/>.</summary>
    public TimeStep Steps(Tensor t, int rank, ScalarType dtype)
    {
        var map = Gather(TimestepMap.Select(v => (double)v).ToArray(), t, 1);
        return new TimeStep(map, Gather(SqrtAlphasCumprod, t, rank).to_type(dtype), Gather(SqrtOneMinusAlphasCumprod, t, rank).to_type(dtype));
    }

    /// <summary>
    /// One ancestral (posterior) step from step i to i − 1 given the model's x̂0: the mean of q(x_{i−1} | x_i, x̂0),
    /// c₀·x̂0 + c_t·x_i, plus √variance·z when i &gt; 0 (variance β̃_i, or β_i when <paramref name="fixedLarge"/>);
    /// z is drawn from <paramref name="gen"/> only when it is used. Shared by the DDPM sampler and the consistency chain.
    /// </summary>
    public Tensor AncestralStep(int i, Tensor x, Tensor x0, Sampling.NoiseSource? gen, bool fixedLarge = false)
    {
        var mean = x0.Mul(PosteriorMeanCoefX0[i]).Add(x.Mul(PosteriorMeanCoefXt[i]));
        if (i == 0) return mean;
        double variance = fixedLarge ? Betas[i] : PosteriorVariance[i];
        var z = Sampling.NoiseSource.RandnLike(gen, x);
        return mean.Add(z.Mul(Math.Sqrt(variance)));
    }

    /// <summary>Gathers <paramref name="values"/> at integer times t (shape [N]) as a float64 tensor of shape [N, 1, …] for broadcasting against a tensor of rank <paramref name="rank"/>.</summary>
    public static Tensor Gather(double[] values, Tensor t, int rank)
    {
        using var table = tensor(values, dtype: ScalarType.Float64);
        var g = table.index_select(0, t.to_type(ScalarType.Int64));
        var shape = new long[rank];
        shape[0] = -1;
        for (int i = 1; i < rank; i++) shape[i] = 1;
        return g.reshape(shape);
    }

    internal static double[] Linspace(double a, double b, int n)
    {
        var r = new double[n];
        if (n == 1) { r[0] = a; return r; }
        for (int i = 0; i < n; i++) r[i] = a + (b - a) * i / (n - 1);
        return r;
    }

    private static void CheckT(int T)
    {
        if (T < 2) throw new ArgumentException($"schedule length T must be at least 2, got {T}");
    }
}
