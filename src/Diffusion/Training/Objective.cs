using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;

namespace Diffusion.Training;

/// <summary>One draw of the forward process for a batch: t ~ U{0 … T−1}, ε ~ N(0, I), x_t = α·x0 + σ·ε.</summary>
public sealed class ForwardDraw
{
    public required Tensor X0 { get; init; }
    /// <summary>Integer times, int64 [N].</summary>
    public required Tensor T { get; init; }
    public required Tensor Eps { get; init; }
    /// <summary>√ᾱ_t, float32 [N, 1, …] (broadcasts against x).</summary>
    public required Tensor Alpha { get; init; }
    /// <summary>√(1 − ᾱ_t), float32 [N, 1, …].</summary>
    public required Tensor Sigma { get; init; }
    public required Tensor Xt { get; init; }

    /// <summary>Draws t and ε for <paramref name="x0"/> from <paramref name="gen"/> (t first, then ε).</summary>
    public static ForwardDraw Sample(NoiseSchedule schedule, Tensor x0, Generator gen)
    {
        long n = x0.shape[0];
        int rank = (int)x0.dim();
        var t = randint(0, schedule.T, [n], dtype: ScalarType.Int64, generator: gen);
        var eps = randn(x0.shape, dtype: x0.dtype, generator: gen);
        var alpha = NoiseSchedule.Gather(schedule.SqrtAlphasCumprod, t, rank).to_type(x0.dtype);
        var sigma = NoiseSchedule.Gather(schedule.SqrtOneMinusAlphasCumprod, t, rank).to_type(x0.dtype);
        var xt = Parameterization.QSample(x0, eps, alpha, sigma);
        return new ForwardDraw { X0 = x0, T = t, Eps = eps, Alpha = alpha, Sigma = sigma, Xt = xt };
    }
}

/// <summary>
/// The training objective: the baseline "simple" loss E‖target − f_θ(x_t, t)‖² with the target of the
/// network's parameterisation (ε, x0 or v), averaged over dimensions and the batch.
/// </summary>
public sealed class DiffusionObjective(NoiseSchedule schedule, Prediction prediction)
{
    public NoiseSchedule Schedule { get; } = schedule;
    public Prediction Prediction { get; } = prediction;

    /// <summary>The batch loss (a scalar with a graph to the network's parameters). <paramref name="parts"/> receives named components for the log.</summary>
    public Tensor Loss(DenoiserNetwork net, Tensor x0, Generator gen, IDictionary<string, double>? parts = null)
    {
        var draw = ForwardDraw.Sample(Schedule, x0, gen);
        var output = net.call(draw.Xt, draw.T.to_type(ScalarType.Float32));
        var target = Parameterization.Target(Prediction, draw.X0, draw.Eps, draw.Alpha, draw.Sigma);
        var perExample = (output - target).pow(2).flatten(1).mean([1]);
        var loss = perExample.mean();
        if (parts is not null) parts["mse"] = loss.item<float>();
        return loss;
    }
}
