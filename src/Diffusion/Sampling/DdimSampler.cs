using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;

namespace Diffusion.Sampling;

/// <summary>
/// DDIM (Song et al.) over the visited timesteps τ_S &gt; … &gt; τ_1: with ᾱ = ᾱ_{τ_i} and ᾱ' = ᾱ_{τ_{i−1}}
/// (1 after the last step), σ = η·√((1 − ᾱ')/(1 − ᾱ))·√(1 − ᾱ/ᾱ') and
/// x' = √ᾱ'·x̂0 + √(1 − ᾱ' − σ²)·ε̂ + σ·z. When x̂0 is clipped, ε̂ is recomputed from the clipped x̂0.
/// With η = 0 the sampler is deterministic and draws no random numbers.
/// </summary>
public sealed class DdimSampler : ISampler
{
    private readonly NoiseSchedule schedule;
    private readonly int[] steps;
    private readonly double eta;
    private readonly bool clip;

    public DdimSampler(NoiseSchedule schedule, IReadOnlyList<int> timesteps, double eta, bool clipDenoised)
    {
        if (eta < 0) throw new UserError($"--eta must be zero or more, got {eta}");
        this.schedule = schedule;
        steps = timesteps.OrderBy(t => t).ToArray();
        this.eta = eta;
        clip = clipDenoised;
    }

    public int Evaluations => steps.Length;

    public Tensor Sample(IDenoiser model, Tensor xT, Generator? gen, SamplerProgress? progress = null)
    {
        var x = xT.clone();
        long n = x.shape[0];
        for (int i = steps.Length - 1; i >= 0; i--)
        {
            using var scope = NewDisposeScope();
            int tc = steps[i];
            double ab = schedule.AlphasCumprod[tc];
            double abPrev = i > 0 ? schedule.AlphasCumprod[steps[i - 1]] : 1.0;
            var t = full(n, (double)tc, dtype: ScalarType.Float64, device: x.device);
            var alpha = Samplers.Scalar(Math.Sqrt(ab), x);
            var sigmaT = Samplers.Scalar(Math.Sqrt(1 - ab), x);
            var (eps, x0) = model.EpsAndX0(x, t, alpha, sigmaT);
            if (clip)
            {
                x0 = x0.clamp(-1.0, 1.0);
                eps = Parameterization.EpsFromX0(x, x0, alpha, sigmaT);
            }
            double sigma = eta * Math.Sqrt((1 - abPrev) / (1 - ab)) * Math.Sqrt(1 - ab / abPrev);
            var next = x0 * Math.Sqrt(abPrev) + eps * Math.Sqrt(Math.Max(0.0, 1 - abPrev - sigma * sigma));
            if (sigma > 0) next = next + randn(x.shape, dtype: x.dtype, device: x.device, generator: gen) * sigma;
            x.Dispose();
            x = next.MoveToOuterDisposeScope();
            progress?.Invoke(steps.Length - i, steps.Length);
        }
        return x;
    }
}
