using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Sampling;

/// <summary>
/// DDPM ancestral sampling, optionally respaced (improved-diffusion's way: a new schedule keeps ᾱ at
/// the visited steps, β_i = 1 − ᾱ_{t_i}/ᾱ_{t_{i−1}}). Each step: x̂0 from the model (clipped to
/// [−1, 1] if asked), the posterior mean μ = c₀·x̂0 + c_t·x_t, and x ← μ + σ·z with
/// σ² = β̃ ("fixed-small") or β ("fixed-large"); no noise at the last step (<see cref="NoiseSchedule.AncestralStep"/>).
/// </summary>
public sealed class DdpmSampler : ISampler
{
    /// <summary>The registry entry: <c>ddpm</c>, T steps by default.</summary>
    public static readonly SamplerKind Kind = new("ddpm", "ancestral sampling (Ho et al.), respaced when steps < T",
        [Respacing.Option, new SamplerOption("variance", "DDPM's σ²: fixed-small (β̃, default) or fixed-large (β)", Choices: ["fixed-small", "fixed-large"])],
        T => T,
        (c, s, clip) => new DdpmSampler(s, Respacing.Timesteps(c.Spacing, s.T, c.Steps), c.Variance == "fixed-large", clip),
        c => $"ddpm {c.Steps} steps ({c.Spacing}, {c.Variance})");

    private readonly NoiseSchedule s;
    private readonly bool fixedLarge, clip;

    public DdpmSampler(NoiseSchedule schedule, IReadOnlyList<int> timesteps, bool fixedLarge, bool clipDenoised)
    {
        s = schedule.Respace(timesteps);
        this.fixedLarge = fixedLarge;
        clip = clipDenoised;
    }

    /// <summary>The (possibly respaced) schedule the chain runs on.</summary>
    public NoiseSchedule Schedule => s;
    public int Evaluations => s.T;

    public Tensor Sample(IDenoiser model, Tensor xT, NoiseSource? gen, SamplerProgress? progress = null)
    {
        var x = xT.clone();
        for (int i = s.T - 1; i >= 0; i--)
        {
            using var scope = NewDisposeScope();
            var (_, x0) = model.EpsAndX0(x, s.Step(i, x));
            if (clip) x0 = x0.Clamp(-1.0, 1.0);
            var next = s.AncestralStep(i, x, x0, gen, fixedLarge);
            x.Dispose();
            x = next.MoveToOuterDisposeScope();
            progress?.Invoke(s.T - i, s.T);
        }
        return x;
    }
}
