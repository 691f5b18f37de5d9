using Diffusion.Config;
using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Training;

/// <summary>
/// A term of the training objective. Each remedy that changes the loss owns its piece: the denoising term (with
/// the loss weighting and the input perturbation) and the consistency regulariser are terms; E-TSDM's time sharing
/// and SMD's latent noise are layers of the denoiser the terms are given (<see cref="Sampling.DenoiserStack"/>).
/// </summary>
public interface ILossTerm
{
    /// <summary>Names of the parts this term reports that go into the run's log beside the loss (e.g. "consistency").</summary>
    IReadOnlyList<string> LogParts { get; }

    /// <summary>
    /// The term's contribution to the loss (a scalar with a graph to the network's parameters); its parts go into
    /// <paramref name="parts"/> when given. <paramref name="labels"/> are the batch's classes for a class-conditional
    /// model (the null class where dropped), null otherwise; every call of the model on these examples passes them.
    /// </summary>
    Tensor Loss(IDenoiser model, Tensor x0, Generator gen, IDictionary<string, double>? parts, Tensor? labels = null);
}

/// <summary>
/// The training objective, a sum of terms:
/// <code>
///   loss = mean_i w(t_i)·A²(t_i)·‖f_θ(y_i, t_i) − target_i‖²  +  λ·MMD²(chain, forward)
/// </code>
/// <list type="bullet">
/// <item><see cref="DenoisingLoss"/>: the baseline "simple" loss with the target of the network's parameterisation,
/// its <see cref="LossWeighting"/> (w and A²) and <see cref="InputPerturbation"/> (the input y = x_t + σ·γ·ξ);</item>
/// <item><see cref="ConsistencyRegularizer"/>: the MMD² term with weight λ, when on.</item>
/// </list>
/// The denoiser the terms are given carries E-TSDM's time condition and SMD's η. Random draws, in order: t, ε
/// (the forward draw), ξ (perturbation), η (SMD), then the regulariser's. With every remedy off this is exactly
/// the baseline and draws exactly what the baseline draws.
/// <para>
/// A class-conditional run passes each batch's labels: first (before t) the label dropout of classifier-free
/// guidance replaces each by the null class with probability p (<see cref="ClassConditioning.DropLabels"/>), then
/// every term gets the same labels — the denoising term and the consistency chain alike.
/// </para>
/// </summary>
public sealed class DiffusionObjective(IReadOnlyList<ILossTerm> terms, double labelDropout = 0, int classes = 0)
{
    public IReadOnlyList<ILossTerm> Terms { get; } = terms;
    /// <summary>p of the label dropout (0 for an unconditional model).</summary>
    public double LabelDropout { get; } = labelDropout;
    /// <summary>K, the number of classes; K is also the null class's label.</summary>
    public int Classes { get; } = classes;

    /// <summary>The baseline objective (no remedy).</summary>
    public DiffusionObjective(NoiseSchedule schedule, Prediction prediction) : this([new DenoisingLoss(schedule, prediction)]) { }

    /// <summary>The objective a run's config asks for.</summary>
    public static DiffusionObjective From(RunConfig cfg, NoiseSchedule schedule)
    {
        var prediction = Parameterization.Parse(cfg.Model.Prediction);
        var terms = new List<ILossTerm> { new DenoisingLoss(schedule, prediction, LossWeighting.From(cfg), cfg.Perturbation.Gamma) };
        if (cfg.Consistency.Weight > 0) terms.Add(new ConsistencyRegularizer(schedule, cfg.Consistency.MaxSteps, cfg.Consistency.Weight));
        return new DiffusionObjective(terms, cfg.Train.LabelDropoutFor(cfg.Model), cfg.Model.NumClasses);
    }

    /// <summary>The parts the terms report for the log, in order.</summary>
    public IReadOnlyList<string> LogParts => Terms.SelectMany(t => t.LogParts).ToList();

    /// <summary>
    /// The batch loss, the sum of the terms; <paramref name="parts"/> receives every term's named components.
    /// <paramref name="labels"/>: the batch's classes for a class-conditional model (label dropout applied here).
    /// </summary>
    public Tensor Loss(IDenoiser model, Tensor x0, Generator gen, IDictionary<string, double>? parts = null, Tensor? labels = null)
    {
        if (labels is not null && Classes == 0) throw new InvalidOperationException("labels given to the objective of an unconditional model");
        using var kept = labels is null ? null : ClassConditioning.DropLabels(labels, LabelDropout, Classes, gen);
        var loss = Terms[0].Loss(model, x0, gen, parts, kept);
        for (int i = 1; i < Terms.Count; i++) loss = loss.Add(Terms[i].Loss(model, x0, gen, parts, kept));
        return loss;
    }
}

/// <summary>
/// The denoising term: mean_i w(t_i)·A²(t_i)·‖f_θ(y_i, t_i) − target_i‖² over one forward draw per example, with the
/// weighting of <see cref="LossWeighting"/> and the perturbed input of <see cref="InputPerturbation"/> (γ = 0: none).
/// Parts: "mse" (unweighted, in the network's parameterisation) and "weighted" (this term); neither is logged.
/// </summary>
public sealed class DenoisingLoss(NoiseSchedule schedule, Prediction prediction, LossWeighting? weighting = null, double perturbationGamma = 0) : ILossTerm
{
    public NoiseSchedule Schedule { get; } = schedule;
    public Prediction Prediction { get; } = prediction;
    public LossWeighting Weighting { get; } = weighting ?? new LossWeighting("constant");
    public double PerturbationGamma { get; } = perturbationGamma;
    public IReadOnlyList<string> LogParts => [];

    public Tensor Loss(IDenoiser model, Tensor x0, Generator gen, IDictionary<string, double>? parts, Tensor? labels = null)
    {
        var draw = ForwardDraw.Sample(Schedule, x0, gen);
        var input = InputPerturbation.Apply(draw, PerturbationGamma, gen);
        var output = labels is null ? model.Predict(input, draw.Step) : model.Predict(input, draw.Step, labels);
        var target = Parameterization.Target(Prediction, draw.X0, draw.Eps, draw.Alpha, draw.Sigma);
        var perExample = (output - target).Pow(2L).flatten(1).mean([1]);
        Tensor loss = Weighting.Name == "constant" && Prediction == Prediction.Epsilon
            ? perExample.mean()
            : (perExample * Weighting.PerExample(Prediction, Schedule, draw.T).to_type(perExample.dtype)).mean();
        if (parts is not null)
        {
            parts["mse"] = perExample.mean().item<float>();
            parts["weighted"] = loss.item<float>();
        }
        return loss;
    }
}
