using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Sampling;

/// <summary>
/// DDIM (Song et al.) over the visited timesteps τ_S &gt; … &gt; τ_1: with ᾱ = ᾱ_{τ_i} and ᾱ' = ᾱ_{τ_{i−1}}
/// (1 after the last step), σ = η·√((1 − ᾱ')/(1 − ᾱ))·√(1 − ᾱ/ᾱ') and
/// x' = √ᾱ'·x̂0 + √(1 − ᾱ' − σ²)·ε̂ + σ·z. When x̂0 is clipped, ε̂ is recomputed from the clipped x̂0.
/// With η = 0 the sampler is deterministic and draws no random numbers. It runs on the respaced schedule
/// (<see cref="NoiseSchedule.Respace"/>), the same respacing as DDPM's.
/// </summary>
public sealed class DdimSampler : ISampler
{
    /// <summary>The registry entry: <c>ddim</c>, 50 steps by default.</summary>
    public static readonly SamplerKind Kind = new("ddim", "DDIM (Song et al.); η = 0 is deterministic",
        [Respacing.Option, new SamplerOption("eta", "DDIM's η (default 0: deterministic)", Check: v => double.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out var e) && e >= 0 ? null : "expected zero or more")],
        T => Math.Min(50, T),
        (c, s, clip) => new DdimSampler(s, Respacing.Timesteps(c.Spacing, s.T, c.Steps), c.Eta, clip),
        c => $"ddim {c.Steps} steps ({c.Spacing}, eta {c.Eta})");

    private readonly NoiseSchedule s;
    private readonly double eta;
    private readonly bool clip;

    public DdimSampler(NoiseSchedule schedule, IReadOnlyList<int> timesteps, double eta, bool clipDenoised)
    {
        if (eta < 0) throw new UserError($"--eta must be zero or more, got {eta}");
        s = schedule.Respace(timesteps);
        this.eta = eta;
        clip = clipDenoised;
    }

    /// <summary>The respaced schedule the chain runs on.</summary>
    public NoiseSchedule Schedule => s;
    public int Evaluations => s.T;

    public Tensor Sample(IDenoiser model, Tensor xT, NoiseSource? gen, SamplerProgress? progress = null)
    {
        var x = xT.clone();
        for (int i = s.T - 1; i >= 0; i--)
        {
            using var scope = NewDisposeScope();
            double ab = s.AlphasCumprod[i], abPrev = s.AlphasCumprodPrev[i];
            var step = s.Step(i, x);
            var (eps, x0) = model.EpsAndX0(x, step);
            if (clip)
            {
                x0 = x0.Clamp(-1.0, 1.0);
                eps = Parameterization.EpsFromX0(x, x0, step.Alpha, step.Sigma);
            }
            double sigma = eta * Math.Sqrt((1 - abPrev) / (1 - ab)) * Math.Sqrt(1 - ab / abPrev);
            var next = x0.Mul(Math.Sqrt(abPrev)).Add(eps.Mul(Math.Sqrt(Math.Max(0.0, 1 - abPrev - sigma * sigma))));
            if (sigma > 0) next = next.Add(NoiseSource.RandnLike(gen, x).Mul(sigma));
            x.Dispose();
            x = next.MoveToOuterDisposeScope();
            progress?.Invoke(s.T - i, s.T);
        }
        return x;
    }
}
