using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;

namespace Diffusion.Sampling;

/// <summary>
/// DDPM ancestral sampling, optionally respaced (improved-diffusion's way: a new schedule keeps ᾱ at
/// the visited steps, β_i = 1 − ᾱ_{t_i}/ᾱ_{t_{i−1}}). Each step: x̂0 from the model (clipped to
/// [−1, 1] if asked), the posterior mean μ = c₀·x̂0 + c_t·x_t, and x ← μ + σ·z with
/// σ² = β̃ ("fixed-small") or β ("fixed-large"); no noise at the last step.
/// </summary>
public sealed class DdpmSampler : ISampler
{
    private readonly NoiseSchedule s;
    private readonly bool fixedLarge, clip;

    public DdpmSampler(NoiseSchedule schedule, IReadOnlyList<int> timesteps, bool fixedLarge, bool clipDenoised)
    {
        s = timesteps.Count == schedule.T ? schedule : schedule.Respace(timesteps);
        this.fixedLarge = fixedLarge;
        clip = clipDenoised;
    }

    /// <summary>The (possibly respaced) schedule the chain runs on.</summary>
    public NoiseSchedule Schedule => s;
    public int Evaluations => s.T;

    public Tensor Sample(IDenoiser model, Tensor xT, Generator? gen, SamplerProgress? progress = null)
    {
        var x = xT.clone();
        long n = x.shape[0];
        for (int i = s.T - 1; i >= 0; i--)
        {
            using var scope = NewDisposeScope();
            var t = full(n, (double)s.TimestepMap[i], dtype: ScalarType.Float64, device: x.device);
            var alpha = Samplers.Scalar(s.SqrtAlphasCumprod[i], x);
            var sigma = Samplers.Scalar(s.SqrtOneMinusAlphasCumprod[i], x);
            var (_, x0) = model.EpsAndX0(x, t, alpha, sigma);
            if (clip) x0 = x0.clamp(-1.0, 1.0);
            var mean = s.PosteriorMean(x0, x, i);
            Tensor next;
            if (i > 0)
            {
                double variance = fixedLarge ? s.Betas[i] : s.PosteriorVariance[i];
                var z = randn(x.shape, dtype: x.dtype, device: x.device, generator: gen);
                next = mean + z * Math.Sqrt(variance);
            }
            else next = mean;
            x.Dispose();
            x = next.MoveToOuterDisposeScope();
            progress?.Invoke(s.T - i, s.T);
        }
        return x;
    }
}
