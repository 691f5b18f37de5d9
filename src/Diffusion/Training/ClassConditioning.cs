using TorchSharp;
using Diffusion.Config;
using Diffusion.Data;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Training;

/// <summary>
/// Class-conditional training as classifier-free guidance needs it (Ho &amp; Salimans 2022): the network is told
/// each example's class, except that with probability p (train.label-dropout, default 0.1) the label is replaced
/// by the null class K, so that one network learns both the conditional ε(x, c) and the unconditional ε(x, ∅).
/// </summary>
public static class ClassConditioning
{
    /// <summary>
    /// Checks that the data can train a model of <c>model.num-classes</c> classes — labels present, every label below
    /// K, as many named classes as K — and records the data's class names in the config (so every checkpoint
    /// carries them). Does nothing for an unconditional model.
    /// </summary>
    public static void CheckData(RunConfig cfg, Dataset data)
    {
        int k = cfg.Model.NumClasses;
        if (k == 0) return;
        if (data.Labels is null)
            throw new UserError($"model.num-classes = {k}: the data {data.Spec} has no labels; use a labelled source (fashion-mnist, mnist, images:DIR with a sub-folder per class, npy:FILE?labels=LABELS.npy, a mixture)");
        long max = data.Labels.max().item<long>(), min = data.Labels.min().item<long>();
        if (min < 0 || max >= k)
            throw new UserError($"model.num-classes = {k}: the data {data.Spec} has label {(min < 0 ? min : max)}; expected labels 0 … {k - 1}");
        if (data.ClassNames is { } names)
        {
            if (names.Count != k)
                throw new UserError($"model.num-classes = {k}: the data {data.Spec} has {names.Count} classes ({string.Join(", ", names.Take(12))}{(names.Count > 12 ? ", …" : "")}); set model.num-classes={names.Count}");
            if (cfg.Model.ClassNames is { } saved && !saved.SequenceEqual(names))
                throw new UserError($"model.class-names: the config names the classes {string.Join(", ", saved)}, the data {data.Spec} {string.Join(", ", names)}");
            cfg.Model.ClassNames = names.ToArray();
        }
    }

    /// <summary>
    /// The labels with each replaced by the null class <paramref name="nullClass"/> with probability <paramref name="p"/>,
    /// one uniform draw per example from <paramref name="gen"/> (none when p = 0).
    /// </summary>
    public static Tensor DropLabels(Tensor labels, double p, int nullClass, Generator gen)
    {
        if (p == 0) return labels.alias();
        using var u = rand([labels.shape[0]], dtype: ScalarType.Float64, generator: gen);
        using var drop = u.Lt(p);
        using var nullValue = nullClass.ToScalar();
        using var nulls = full_like(labels, nullValue);
        return where(drop, nulls, labels);
    }
}
