using System.Globalization;
using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Sampling;

/// <summary>
/// k-diffusion's <c>sample_euler</c> and <c>sample_heun</c> (Karras et al. 2022, "Elucidating the Design Space",
/// Algorithm 1 without churn: EDM's deterministic second-order sampler) over the discrete ε-model viewed in σ
/// (<see cref="SigmaView"/>): the probability-flow ODE dx/dσ = ε̂(x/√(σ² + 1), t(σ)) in x = x_t/α_t, on the noise
/// levels of <see cref="SigmaView.Karras"/> (σ_max, σ_min of the discrete schedule, ρ = 7 by default) with the final
/// step to σ = 0. Each step forms denoised = x − σ·ε̂ and d = (x − denoised)/σ as k-diffusion does; Euler takes
/// x ← x + d·(σ_next − σ), Heun corrects with the slope at σ_next (trapezoid) except on the last step to 0, which is
/// an Euler step. Evaluations: Euler n, Heun 2n − 1 for n noise levels (<c>--steps</c>).
/// <para>
/// x_T ~ N(0, I) is the VP x at t = T − 1, so the chain starts from x = x_T·√(σ_max² + 1), the exact VP
/// correspondence (k-diffusion scales the noise by σ_max instead, a relative difference of 1/(2σ_max²), 2·10⁻⁵ for
/// the linear schedule). x̂0 is never clipped (k-diffusion does not clip; clipping breaks the ODE). Deterministic.
/// </para>
/// </summary>
public sealed class KarrasSamplers : ISampler
{
    private static readonly SamplerOption[] Options =
    [
        new("sigmas", "euler/heun: the noise levels: karras (Karras et al.'s ρ-spaced σ from σ_max to σ_min, then 0; the default)", Choices: ["karras"]),
        new("rho", "euler/heun: ρ of the karras noise levels (default 7)",
            Check: v => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var r) && r > 0 ? null : "expected a positive number"),
    ];

    private static KarrasSamplers FromConfig(Config.SampleConfig c, NoiseSchedule s, bool heun) =>
        new(s, c.Steps, heun, double.Parse(c.Option("rho", "7"), CultureInfo.InvariantCulture));

    /// <summary>The registry entry of k-diffusion's <c>sample_euler</c>: 50 noise levels by default.</summary>
    public static readonly SamplerKind Euler = new("euler", "k-diffusion's Euler sampler in σ (first order)", Options, T => 50,
        (c, s, _) => FromConfig(c, s, heun: false), c => $"euler {c.Steps} steps (karras σ, ρ {c.Option("rho", "7")})");

    /// <summary>The registry entry of k-diffusion's <c>sample_heun</c> (EDM's deterministic sampler): 18 noise levels by default (35 evaluations).</summary>
    public static readonly SamplerKind Heun = new("heun", "k-diffusion's Heun sampler in σ (EDM's second-order sampler)", Options, T => 18,
        (c, s, _) => FromConfig(c, s, heun: true), c => $"heun {c.Steps} steps, {2 * c.Steps - 1} evaluations (karras σ, ρ {c.Option("rho", "7")})");

    private readonly SigmaView view;
    private readonly bool heun;

    /// <summary>The noise levels σ_0 &gt; … &gt; σ_{n−1} &gt; 0 = σ_n.</summary>
    public double[] Sigmas { get; }
    public int Evaluations => heun ? 2 * (Sigmas.Length - 1) - 1 : Sigmas.Length - 1;

    public KarrasSamplers(NoiseSchedule schedule, int steps, bool heun, double rho = 7.0)
    {
        view = new SigmaView(schedule);
        this.heun = heun;
        Sigmas = SigmaView.Karras(steps, view.SigmaMin, view.SigmaMax, rho);
    }

    public Tensor Sample(IDenoiser model, Tensor xT, NoiseSource? gen, SamplerProgress? progress = null)
    {
        int done = 0;
        // d = (x − denoised)/σ with denoised = x − σ·ε̂(x/√(σ² + 1), t(σ)).
        Tensor Slope(Tensor x, double sigma)
        {
            using var scope = NewDisposeScope();
            var step = view.Step(sigma, x);
            var denoised = x - model.Eps(x * step.Alpha, step).Mul(sigma);
            progress?.Invoke(++done, Evaluations);
            return (x - denoised).Div(sigma).MoveToOuterDisposeScope();
        }

        var x = xT.Mul(Math.Sqrt(Sigmas[0] * Sigmas[0] + 1));
        for (int i = 0; i < Sigmas.Length - 1; i++)
        {
            using var scope = NewDisposeScope();
            double sigma = Sigmas[i], next = Sigmas[i + 1], dt = next - sigma;
            var d = Slope(x, sigma);
            Tensor updated;
            if (!heun || next == 0) updated = x.Add(d.Mul(dt));
            else
            {
                var x2 = x.Add(d.Mul(dt));
                var d2 = Slope(x2, next);
                updated = x.Add(d.Add(d2).Div(2L).Mul(dt));
            }
            x.Dispose();
            x = updated.MoveToOuterDisposeScope();
        }
        return x;
    }
}
