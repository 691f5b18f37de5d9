using TorchSharp;
using Diffusion.Models;
using static TorchSharp.torch;

namespace Diffusion.Schedules;

/// <summary>
/// The forward process q(x_t | x0) for a batch, the one place x_t = α·x0 + σ·ε is formed (the objective, the
/// consistency chain and the diagnostics all draw through it): the times, the noise, the <see cref="TimeStep"/>
/// (network time with α = √ᾱ_t and σ = √(1 − ᾱ_t) in x0's dtype) and x_t.
/// </summary>
public sealed class ForwardDraw
{
    public required Tensor X0 { get; init; }
    /// <summary>Integer step indices of the schedule, int64 [N].</summary>
    public required Tensor T { get; init; }
    public required Tensor Eps { get; init; }
    /// <summary>The steps as a denoiser is asked about them.</summary>
    public required TimeStep Step { get; init; }
    public required Tensor Xt { get; init; }
    /// <summary>√ᾱ_t, broadcasting against x.</summary>
    public Tensor Alpha => Step.Alpha;
    /// <summary>√(1 − ᾱ_t), broadcasting against x.</summary>
    public Tensor Sigma => Step.Sigma;

    /// <summary>Draws t ~ U{0 … T−1} and ε ~ N(0, I) for <paramref name="x0"/> from <paramref name="gen"/> (t first, then ε).</summary>
    public static ForwardDraw Sample(NoiseSchedule schedule, Tensor x0, Generator gen)
    {
        long n = x0.shape[0];
        var t = randint(0, schedule.T, [n], dtype: ScalarType.Int64, generator: gen);
        var eps = randn(x0.shape, dtype: x0.dtype, generator: gen);
        return At(schedule, x0, t, eps);
    }

    /// <summary>The draw for given per-example times and noise.</summary>
    public static ForwardDraw At(NoiseSchedule schedule, Tensor x0, Tensor t, Tensor eps)
    {
        var step = schedule.Steps(t, (int)x0.dim(), x0.dtype);
        return new ForwardDraw { X0 = x0, T = t, Eps = eps, Step = step, Xt = Parameterization.QSample(x0, eps, step.Alpha, step.Sigma) };
    }

    /// <summary>The draw of the whole batch at one step <paramref name="t"/>, with ε drawn from <paramref name="gen"/>.</summary>
    public static ForwardDraw At(NoiseSchedule schedule, Tensor x0, int t, Generator? gen)
    {
        var eps = randn(x0.shape, dtype: x0.dtype, device: x0.device, generator: gen);
        var step = schedule.Step(t, x0);
        using var tValue = ((long)t).ToScalar();
        return new ForwardDraw
        {
            X0 = x0, T = full(x0.shape[0], tValue, dtype: ScalarType.Int64), Eps = eps, Step = step,
            Xt = Parameterization.QSample(x0, eps, step.Alpha, step.Sigma),
        };
    }
}
