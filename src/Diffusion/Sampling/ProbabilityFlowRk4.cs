using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Sampling;

/// <summary>
/// A reference solver of the same probability-flow ODE that DPM-Solver integrates, written independently of it:
/// classical fourth-order Runge–Kutta in λ = log(α/σ) on y = x/σ, for which dy/dλ = e^λ·x̂0 = y − ε̂(σ(λ)·y, λ)
/// with σ(λ)² = 1/(1 + e^{2λ}), over uniform λ-steps from t = 1 to t = 1/N of <see cref="ContinuousVp.ForSolver"/>.
/// The denoiser is asked at the network time of t = λ⁻¹(λ). Four evaluations per step; slow, accurate
/// (fourth order), deterministic: for checking samplers against, not for everyday sampling.
/// </summary>
public sealed class ProbabilityFlowRk4(NoiseSchedule schedule, int steps) : ISampler
{
    public ContinuousVp Vp { get; } = ContinuousVp.ForSolver(schedule);
    public int Evaluations => 4 * steps;

    public Tensor Sample(IDenoiser model, Tensor xT, NoiseSource? gen, SamplerProgress? progress = null)
    {
        if (steps < 1) throw new UserError($"--steps must be at least 1, got {steps}");
        double l0 = Vp.Lambda(Vp.TMax), l1 = Vp.Lambda(Vp.TMin), h = (l1 - l0) / steps;
        static double Sigma(double lam) => 1 / Math.Sqrt(1 + Math.Exp(2 * lam));
        Tensor F(Tensor y, double lam)
        {
            using var scope = NewDisposeScope();
            var x = y.Mul(Sigma(lam));
            return (y - model.Eps(x, Vp.StepAtLambda(lam, x))).MoveToOuterDisposeScope();
        }
        var y = xT.Div(Sigma(l0));
        for (int i = 0; i < steps; i++)
        {
            using var scope = NewDisposeScope();
            double l = l0 + i * h;
            var k1 = F(y, l);
            var k2 = F(y.Add(k1.Mul(h / 2)), l + h / 2);
            var k3 = F(y.Add(k2.Mul(h / 2)), l + h / 2);
            var k4 = F(y.Add(k3.Mul(h)), l + h);
            var next = y.Add(k1.Add(k2.Mul(2L)).Add(k3.Mul(2L)).Add(k4).Mul(h / 6));
            y.Dispose();
            y = next.MoveToOuterDisposeScope();
            progress?.Invoke(i + 1, steps);
        }
        var r = y.Mul(Sigma(l1));
        y.Dispose();
        return r;
    }
}
