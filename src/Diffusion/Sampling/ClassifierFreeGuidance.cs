using TorchSharp;
using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Sampling;

/// <summary>
/// Class conditioning at sampling time, with classifier-free guidance (Ho &amp; Salimans 2022) — the outermost layer of
/// the denoiser stack of a class-conditional model. It tells the denoiser inside the class of each row
/// (<see cref="Labels"/>, one per row of the batch a sampler asks about) and, with guidance weight w &gt; 0, returns
/// <code>
///   ε̂ = (1 + w)·ε̂(x, c) − w·ε̂(x, ∅)
/// </code>
/// (Ho &amp; Salimans' convention: w = 0 is the unguided conditional model; diffusers' guidance_scale s is 1 + w). The
/// conditional and the unconditional pass are ONE call of the denoiser inside: x twice along the batch, the labels
/// followed by the null class K.
/// <para>
/// The combination is made in the model's own output space (ε, x0 or v). That is the same as converting both passes
/// to ε first and guiding ε: each conversion is affine in the output with the same x_t for both passes, and the
/// weights (1 + w) and −w sum to 1, so it commutes with the combination. (It likewise commutes with epsilon scaling,
/// which divides ε̂ by a per-row λ_t.) A row whose label is the null class gets the unconditional prediction.
/// </para>
/// <para>
/// With soft mixture denoising the network draws its η for all 2N rows of the one pass, so the conditional and the
/// unconditional prediction of a row see independent latents (as two separate calls would).
/// </para>
/// </summary>
public sealed class GuidedDenoiser : IDenoiser
{
    private readonly IDenoiser inner;

    /// <param name="inner">A class-conditional denoiser (disposed with this one).</param>
    /// <param name="guidance">w ≥ 0; 0 asks the conditional model alone (one pass of N rows).</param>
    public GuidedDenoiser(IDenoiser inner, double guidance)
    {
        if (inner.Classes == 0) throw new UserError("--guidance/--class: the model is not class-conditional (model.num-classes = 0)");
        if (!(guidance >= 0) || double.IsInfinity(guidance)) throw new UserError($"--guidance {guidance}: expected a weight w ≥ 0 (w = 0: conditional without guidance)");
        this.inner = inner;
        Guidance = guidance;
    }

    /// <summary>w of ε̂ = (1 + w)·ε̂(x, c) − w·ε̂(x, ∅).</summary>
    public double Guidance { get; }
    public Prediction Prediction => inner.Prediction;
    public int Classes => inner.Classes;

    /// <summary>The class of each row of the batch being sampled (int64 [N], 0 … K; K = unconditional); set before sampling each batch.</summary>
    public Tensor? Labels { get; set; }

    public Tensor Predict(Tensor x, TimeStep step) =>
        Predict(x, step, Labels ?? throw new InvalidOperationException("GuidedDenoiser: set Labels (one class per row) before sampling"));

    public Tensor Predict(Tensor x, TimeStep step, Tensor? labels)
    {
        if (labels is null) return inner.Predict(x, step);
        long n = x.shape[0];
        if (labels.shape[0] != n) throw new InvalidOperationException($"GuidedDenoiser: {labels.shape[0]} labels for a batch of {n} rows");
        if (Guidance == 0) return inner.Predict(x, step, labels);
        using var scope = NewDisposeScope();
        using var nullClass = Classes.ToScalar();
        var both = inner.Predict(cat([x, x], 0), Twice(step, n), cat([labels, full_like(labels, nullClass)], 0));
        var cond = both.narrow(0, 0, n);
        var uncond = both.narrow(0, n, n);
        return (cond.Mul(1 + Guidance) - uncond.Mul(Guidance)).MoveToOuterDisposeScope();
    }

    // The step for the doubled batch: per-row tensors (first dimension N) repeated, shared ones (scalars) kept.
    private static TimeStep Twice(TimeStep step, long n)
    {
        static Tensor Rows(Tensor t, long n) => t.dim() > 0 && t.shape[0] == n ? cat([t, t], 0) : t.alias();
        return new TimeStep(Rows(step.T, n), Rows(step.Alpha, n), Rows(step.Sigma, n));
    }

    public void Dispose() => inner.Dispose();
}
