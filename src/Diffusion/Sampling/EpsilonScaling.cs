using Diffusion.Config;
using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Sampling;

/// <summary>
/// Epsilon Scaling (Ning et al., "Elucidating the Exposure Bias in Diffusion Models"; METHODS.md §1): at
/// sampling time the predicted noise is divided by λ_t = k·t + b, which shrinks it when λ_t &gt; 1 and so
/// counters the larger-than-trained ε̂ norms that exposure bias produces. Training is untouched.
/// <para>
/// Here t is the time the sampler asks the denoiser about, in the network's discrete units (0 … T−1, real-valued
/// for DPM-Solver): the wrapper sits outside any time-conditioning wrapper (E-TSDM's time sharing), so it sees the
/// true time, not the shared one. The authors' code (ADM-ES) indexes its λ by the step of the sampling chain
/// instead — i = 0 … S−1 over S respaced steps, i = 0 the last step — and its released sampling settings use
/// k = 0 (a constant b ≈ 1.004–1.017). With k = 0 the two readings agree; with k ≠ 0 and S steps spread
/// uniformly over T, their k corresponds to k·(S−1)/(T−1) here.
/// </para>
/// <para>
/// For a network that predicts x0 or v the wrapper converts to ε̂ first (with the step's α and σ) and reports ε-prediction, so every sampler's x̂0 is
/// computed from the scaled ε̂, as in the authors' code. b = 1, k = 0 is the identity.
/// </para>
/// </summary>
public sealed class EpsilonScaledDenoiser : IDenoiser
{
    private readonly IDenoiser inner;

    public double B { get; }
    public double K { get; }
    public Prediction Prediction => Prediction.Epsilon;
    public int Classes => inner.Classes;

    /// <param name="inner">The denoiser whose ε̂ is scaled (disposed with this one).</param>
    /// <param name="T">The schedule's number of steps: λ_t must stay positive over t = 0 … T−1.</param>
    /// <param name="b">b of λ_t = k·t + b.</param>
    /// <param name="k">k of λ_t = k·t + b, per unit of the network's time.</param>
    public EpsilonScaledDenoiser(IDenoiser inner, int T, double b, double k = 0.0)
    {
        double end = b + k * (T - 1);
        if (!(b > 0) || !(end > 0))
            throw new UserError($"epsilon scaling λ_t = {k}·t + {b} must stay positive over t = 0 … {T - 1} (it is {b} at 0 and {end} at {T - 1})");
        this.inner = inner;
        B = b;
        K = k;
    }

    /// <summary>λ_t = k·t + b.</summary>
    public double Lambda(double t) => K * t + B;

    public Tensor Predict(Tensor x, TimeStep step) => Predict(x, step, null);

    public Tensor Predict(Tensor x, TimeStep step, Tensor? labels)
    {
        using var scope = NewDisposeScope();
        var eps = inner.Prediction == Prediction.Epsilon ? inner.Predict(x, step, labels) : inner.EpsAndX0(x, step, labels).Eps;
        var shape = new long[x.dim()];
        Array.Fill(shape, 1L);
        shape[0] = -1;
        var lambda = step.T.to_type(ScalarType.Float64).Mul(K).Add(B).to_type(x.dtype).to(x.device).reshape(shape);
        return (eps / lambda).MoveToOuterDisposeScope();
    }

    public void Dispose() => inner.Dispose();
}

/// <summary>The settings of epsilon scaling, λ_t = k·t + b; null from <see cref="From"/> when it is off (b = 1, k = 0).</summary>
public sealed record EpsilonScaling(double B, double K)
{
    public static EpsilonScaling? From(SampleConfig cfg) => cfg.UsesEpsScaling() ? new EpsilonScaling(cfg.EpsScaleB, cfg.EpsScaleK) : null;
}
