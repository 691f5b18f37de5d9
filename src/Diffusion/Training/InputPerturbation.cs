using Diffusion.Schedules;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Training;

/// <summary>
/// Input perturbation against exposure bias (DDPM-IP, METHODS.md §1). The network is fed
/// y_t = √ᾱ_t·x0 + √(1−ᾱ_t)·(ε + γ·ξ) with a second draw ξ ~ N(0, I) independent of ε, while the
/// regression target is still built from the clean draw (ε for ε-prediction). The same γ is used at
/// every t; sampling is unchanged. γ = 0 switches it off (and draws nothing).
/// </summary>
public static class InputPerturbation
{
    /// <summary>The registry entry (<see cref="Remedies"/>).</summary>
    public static readonly Remedy Remedy = new("input-perturbation", ["ip"], "exposure bias", ["perturbation.gamma"], ["perturbation.gamma=0.1"], [],
        c => c.Perturbation.Gamma > 0, c => $"input-perturbation(gamma={c.Perturbation.Gamma})");

    /// <summary>The network input y_t = x_t + σ_t·γ·ξ (ξ drawn from <paramref name="gen"/>), or x_t itself when γ = 0.</summary>
    public static Tensor Apply(ForwardDraw draw, double gamma, Generator gen)
    {
        if (gamma == 0) return draw.Xt.alias();
        var xi = randn(draw.Xt.shape, dtype: draw.Xt.dtype, generator: gen);
        return draw.Xt.Add(draw.Sigma * xi.Mul(gamma));
    }
}
