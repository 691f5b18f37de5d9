using Diffusion.Config;
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
    /// <summary>√ᾱ_t, [N, 1, …] in x0's dtype (broadcasts against x).</summary>
    public required Tensor Alpha { get; init; }
    /// <summary>√(1 − ᾱ_t), [N, 1, …].</summary>
    public required Tensor Sigma { get; init; }
    public required Tensor Xt { get; init; }

    /// <summary>Draws t and ε for <paramref name="x0"/> from <paramref name="gen"/> (t first, then ε).</summary>
    public static ForwardDraw Sample(NoiseSchedule schedule, Tensor x0, Generator gen)
    {
        long n = x0.shape[0];
        var t = randint(0, schedule.T, [n], dtype: ScalarType.Int64, generator: gen);
        var eps = randn(x0.shape, dtype: x0.dtype, generator: gen);
        return At(schedule, x0, t, eps);
    }

    /// <summary>The draw for given times and noise.</summary>
    public static ForwardDraw At(NoiseSchedule schedule, Tensor x0, Tensor t, Tensor eps)
    {
        int rank = (int)x0.dim();
        var alpha = NoiseSchedule.Gather(schedule.SqrtAlphasCumprod, t, rank).to_type(x0.dtype);
        var sigma = NoiseSchedule.Gather(schedule.SqrtOneMinusAlphasCumprod, t, rank).to_type(x0.dtype);
        var xt = Parameterization.QSample(x0, eps, alpha, sigma);
        return new ForwardDraw { X0 = x0, T = t, Eps = eps, Alpha = alpha, Sigma = sigma, Xt = xt };
    }
}

/// <summary>
/// The training objective, a sum of terms each owned by its remedy:
/// <code>
///   loss = mean_i w(t_i)·A²(t_i)·‖f_θ(y_i, f(t_i)) − target_i‖²  +  λ·MMD²(chain, forward)
/// </code>
/// <list type="bullet">
/// <item>the baseline "simple" loss with the target of the network's parameterisation (ε, x0 or v);</item>
/// <item><see cref="LossWeighting"/>: w and A² (weight defined on the ε-error, converted exactly);</item>
/// <item><see cref="InputPerturbation"/>: the network input y = x_t + σ·γ·ξ, the target unchanged;</item>
/// <item><see cref="TimeSharing"/>: the network's time condition f(t) (E-TSDM), the noise level untouched;</item>
/// <item><see cref="ConsistencyRegularizer"/>: the MMD² term with weight λ;</item>
/// <item>soft mixture denoising lives in the network (<see cref="SmdNetwork"/>), which draws one η per example.</item>
/// </list>
/// Random draws, in order: t, ε (the forward draw), ξ (perturbation), η (SMD), then the regulariser's.
/// With every remedy off this is exactly the baseline and draws exactly what the baseline draws.
/// </summary>
public sealed class DiffusionObjective
{
    public NoiseSchedule Schedule { get; }
    public Prediction Prediction { get; }
    public LossWeighting Weighting { get; }
    public double PerturbationGamma { get; }
    public TimeSharing? Sharing { get; }
    public double ConsistencyWeight { get; }
    public ConsistencyRegularizer? Consistency { get; }

    /// <summary>The baseline objective (no remedy).</summary>
    public DiffusionObjective(NoiseSchedule schedule, Prediction prediction)
        : this(schedule, prediction, new LossWeighting("constant"), 0, null, 0, 5) { }

    public DiffusionObjective(NoiseSchedule schedule, Prediction prediction, LossWeighting weighting, double perturbationGamma,
                              TimeSharing? sharing, double consistencyWeight, int consistencyMaxSteps)
    {
        Schedule = schedule;
        Prediction = prediction;
        Weighting = weighting;
        PerturbationGamma = perturbationGamma;
        Sharing = sharing;
        ConsistencyWeight = consistencyWeight;
        if (consistencyWeight > 0) Consistency = new ConsistencyRegularizer(schedule, prediction, consistencyMaxSteps, sharing);
    }

    /// <summary>The objective a run's config asks for.</summary>
    public static DiffusionObjective From(RunConfig cfg, NoiseSchedule schedule) =>
        new(schedule, Parameterization.Parse(cfg.Model.Prediction), LossWeighting.From(cfg), cfg.Perturbation.Gamma,
            TimeSharing.From(cfg), cfg.Consistency.Weight, cfg.Consistency.MaxSteps);

    /// <summary>The time condition the network is given for integer times t (f(t) under time sharing), float32.</summary>
    public Tensor TimeCondition(Tensor t)
    {
        if (Sharing is null) return t.to_type(ScalarType.Float32);
        using var f = Sharing.Map(t);
        return f.to_type(ScalarType.Float32);
    }

    /// <summary>
    /// The batch loss (a scalar with a graph to the network's parameters). <paramref name="parts"/>
    /// receives named components for the log: "mse" (unweighted, in the network's parameterisation),
    /// "weighted" (the weighted denoising term) and, when on, "consistency" (R, before λ).
    /// </summary>
    public Tensor Loss(DenoiserNetwork net, Tensor x0, Generator gen, IDictionary<string, double>? parts = null)
    {
        var draw = ForwardDraw.Sample(Schedule, x0, gen);
        var input = InputPerturbation.Apply(draw, PerturbationGamma, gen);
        var output = net.call(input, TimeCondition(draw.T));
        var target = Parameterization.Target(Prediction, draw.X0, draw.Eps, draw.Alpha, draw.Sigma);
        var perExample = (output - target).pow(2).flatten(1).mean([1]);
        Tensor loss = Weighting.Name == "constant" && Prediction == Prediction.Epsilon
            ? perExample.mean()
            : (perExample * Weighting.PerExample(Prediction, Schedule, draw.T).to_type(perExample.dtype)).mean();
        if (parts is not null)
        {
            parts["mse"] = perExample.mean().item<float>();
            parts["weighted"] = loss.item<float>();
        }
        if (Consistency is not null)
        {
            var r = Consistency.Compute(net, x0, gen, out _);
            if (parts is not null) parts["consistency"] = r.item<float>();
            loss = loss + ConsistencyWeight * r;
        }
        return loss;
    }
}
