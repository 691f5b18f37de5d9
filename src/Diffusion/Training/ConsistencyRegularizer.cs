using Diffusion.Metrics;
using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;

namespace Diffusion.Training;

/// <summary>
/// Consistency regularisation with bootstrapping against error propagation (METHODS.md §4). Per
/// training step:
/// <list type="number">
/// <item>one head ~ U{1 … T−1} for the whole batch and k ~ U{1 … L}; tail = max(head − k, 0);</item>
/// <item>the batch is split into halves A and B (different examples);</item>
/// <item>h ← q(x_head | A), then k ancestral steps of the model from head down to tail (posterior
/// variance β̃, fresh noise), with gradients flowing through all k steps;</item>
/// <item>y ← q(x_tail | B);</item>
/// <item>R = MMD²(h, y), the biased estimator with five RBF kernels whose bandwidth is the mean
/// off-diagonal squared distance of the pooled samples, without gradient (<see cref="Mmd.Biased"/>);</item>
/// <item>the objective adds λ·R.</item>
/// </list>
/// "Bootstrapping": the chain starts from the forward marginal q(x_head), a stand-in for the model's
/// own marginal, so only k ≤ L steps are unrolled instead of the whole chain. The chain asks the
/// network at the time condition of <paramref name="sharing"/> when E-TSDM is on, and an SMD network
/// draws a fresh latent at each of its steps.
/// </summary>
public sealed class ConsistencyRegularizer(NoiseSchedule schedule, Prediction prediction, int maxSteps, TimeSharing? sharing)
{
    public int MaxSteps { get; } = maxSteps;

    /// <summary>Draws (head, k, tail) from <paramref name="gen"/>: head ~ U{1 … T−1}, k ~ U{1 … L}, tail = max(head − k, 0).</summary>
    public (int Head, int K, int Tail) DrawSteps(Generator gen)
    {
        using var h = randint(1, schedule.T, [1], dtype: ScalarType.Int64, generator: gen);
        using var k = randint(1, MaxSteps + 1, [1], dtype: ScalarType.Int64, generator: gen);
        int head = (int)h.item<long>(), kk = (int)k.item<long>();
        return (head, kk, Math.Max(head - kk, 0));
    }

    /// <summary>R = MMD²(chain from q(x_head | A) run to tail, q(x_tail | B)); differentiable in the network's parameters.</summary>
    public Tensor Compute(DenoiserNetwork net, Tensor x0, Generator gen, out (int Head, int K, int Tail) steps)
    {
        long n = x0.shape[0];
        if (n < 4) throw new UserError($"consistency regularisation needs a batch of at least 4 (two halves of at least 2), got {n}");
        steps = DrawSteps(gen);
        var (head, _, tail) = steps;
        long half = n / 2;
        var a = x0.narrow(0, 0, half);
        var b = x0.narrow(0, half, n - half);

        var h = QSample(a, head, gen);
        for (int s = head; s > tail; s--) h = Step(net, h, s, gen);
        var y = QSample(b, tail, gen);
        return Mmd.Biased(h, y);
    }

    private Tensor QSample(Tensor x0, int t, Generator gen)
    {
        var eps = randn(x0.shape, dtype: x0.dtype, generator: gen);
        return x0 * schedule.SqrtAlphasCumprod[t] + eps * schedule.SqrtOneMinusAlphasCumprod[t];
    }

    // One ancestral step of the model from step s to s − 1 (s ≥ 1): posterior mean of x̂0 plus √β̃_s·z.
    private Tensor Step(DenoiserNetwork net, Tensor x, int s, Generator gen)
    {
        double tCond = sharing?.Map(s) ?? s;
        using var t = full(x.shape[0], (float)tCond, dtype: ScalarType.Float32);
        var output = net.call(x, t);
        using var alpha = tensor(schedule.SqrtAlphasCumprod[s], dtype: x.dtype);
        using var sigma = tensor(schedule.SqrtOneMinusAlphasCumprod[s], dtype: x.dtype);
        var (_, x0Hat) = Parameterization.EpsAndX0(prediction, output, x, alpha, sigma);
        var mean = schedule.PosteriorMean(x0Hat, x, s);
        var z = randn(x.shape, dtype: x.dtype, generator: gen);
        return mean + z * Math.Sqrt(schedule.PosteriorVariance[s]);
    }
}
