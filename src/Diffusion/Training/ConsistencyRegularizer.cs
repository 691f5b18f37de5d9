using Diffusion.Metrics;
using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Training;

/// <summary>
/// Consistency regularisation with bootstrapping against error propagation (METHODS.md §4). Per
/// training step:
/// <list type="number">
/// <item>one head ~ U{1 … T−1} for the whole batch and k ~ U{1 … L}; tail = max(head − k, 0);</item>
/// <item>the batch is split into halves A and B (different examples);</item>
/// <item>h ← q(x_head | A), then k ancestral steps of the model from head down to tail (posterior
/// variance β̃, fresh noise; <see cref="NoiseSchedule.AncestralStep"/>, the DDPM sampler's step), with gradients
/// flowing through all k steps;</item>
/// <item>y ← q(x_tail | B);</item>
/// <item>R = MMD²(h, y), the biased estimator with five RBF kernels whose bandwidth is the mean
/// off-diagonal squared distance of the pooled samples, without gradient (<see cref="Mmd.Biased"/>);</item>
/// <item>the objective adds λ·R.</item>
/// </list>
/// "Bootstrapping": the chain starts from the forward marginal q(x_head), a stand-in for the model's
/// own marginal, so only k ≤ L steps are unrolled instead of the whole chain. The chain asks the denoiser it is
/// given, so E-TSDM's time condition and SMD's fresh latent at each step come from the denoiser stack.
/// </summary>
public sealed class ConsistencyRegularizer(NoiseSchedule schedule, int maxSteps, double weight = 1.0) : ILossTerm
{
    /// <summary>The registry entry (<see cref="Remedies"/>).</summary>
    public static readonly Remedy Remedy = new("consistency", ["consistency-regularisation"], "error propagation",
        ["consistency.weight", "consistency.max-steps"], ["consistency.weight=1"], ["consistency"],
        c => c.Consistency.Weight > 0, c => $"consistency(weight={c.Consistency.Weight}, max-steps={c.Consistency.MaxSteps})");

    public int MaxSteps { get; } = maxSteps;
    /// <summary>λ, the weight of the term in the objective.</summary>
    public double Weight { get; } = weight;
    public IReadOnlyList<string> LogParts => ["consistency"];

    /// <summary>Draws (head, k, tail) from <paramref name="gen"/>: head ~ U{1 … T−1}, k ~ U{1 … L}, tail = max(head − k, 0).</summary>
    public (int Head, int K, int Tail) DrawSteps(Generator gen)
    {
        using var h = randint(1, schedule.T, [1], dtype: ScalarType.Int64, generator: gen);
        using var k = randint(1, MaxSteps + 1, [1], dtype: ScalarType.Int64, generator: gen);
        int head = (int)h.item<long>(), kk = (int)k.item<long>();
        return (head, kk, Math.Max(head - kk, 0));
    }

    /// <summary>λ·R; the part "consistency" is R before λ.</summary>
    public Tensor Loss(IDenoiser model, Tensor x0, Generator gen, IDictionary<string, double>? parts, Tensor? labels = null)
    {
        var r = Compute(model, x0, gen, out _, labels);
        if (parts is not null) parts["consistency"] = r.item<float>();
        return r.Mul(Weight);
    }

    /// <summary>
    /// R = MMD²(chain from q(x_head | A) run to tail, q(x_tail | B)); differentiable in the network's parameters. For a
    /// class-conditional model every step of A's chain is told A's labels (the first half of <paramref name="labels"/>).
    /// </summary>
    public Tensor Compute(IDenoiser model, Tensor x0, Generator gen, out (int Head, int K, int Tail) steps, Tensor? labels = null)
    {
        long n = x0.shape[0];
        if (n < 4) throw new UserError($"consistency regularisation needs a batch of at least 4 (two halves of at least 2), got {n}");
        steps = DrawSteps(gen);
        var (head, _, tail) = steps;
        long half = n / 2;
        var a = x0.narrow(0, 0, half);
        var b = x0.narrow(0, half, n - half);
        var labelsA = labels?.narrow(0, 0, half);

        var h = ForwardDraw.At(schedule, a, head, gen).Xt;
        for (int s = head; s > tail; s--)
        {
            var (_, x0Hat) = labelsA is null ? model.EpsAndX0(h, schedule.Step(s, h)) : model.EpsAndX0(h, schedule.Step(s, h), labelsA);
            h = schedule.AncestralStep(s, h, x0Hat, gen);
        }
        var y = ForwardDraw.At(schedule, b, tail, gen).Xt;
        return Mmd.Biased(h, y);
    }
}
