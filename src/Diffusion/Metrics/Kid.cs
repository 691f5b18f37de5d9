using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Metrics;

/// <summary>KID over subsets: the mean and standard deviation of the per-subset estimates.</summary>
public sealed record KidResult(double Mean, double Std, int Subsets, int SubsetSize);

/// <summary>
/// Kernel Inception Distance (Bińkowski et al., 2018): the unbiased estimator of the squared MMD with
/// the cubic polynomial kernel k(x, y) = (xᵀy/d + 1)³, averaged over random subsets. Each subset takes
/// <c>subsetSize</c> rows of each set without replacement (a fresh draw per subset, from the generator
/// passed in); the result is the mean ± standard deviation over subsets (the defaults, 100 subsets of
/// 1000, are those of the paper's code and of torch-fidelity). Being unbiased, the estimate is 0 in
/// expectation for two samples of one distribution and can be slightly negative.
/// </summary>
public static class Kid
{
    /// <summary>The registry entry <c>kid</c> (<see cref="MetricRegistry"/>): unbiased, cubic kernel, over subsets.</summary>
    public static readonly MetricKind Kind = new("kid", "kernel inception distance (unbiased MMD², cubic polynomial kernel, mean ± std over subsets)", true, i =>
    {
        var k = Compute(i.SampleFeatures, i.Reference.Rows!, i.Gen, i.Options.KidSubsets, i.Options.KidSubsetSize);
        return new MetricScore("kid", new() { ["kid"] = k.Mean, ["kid_std"] = k.Std, ["kid_subsets"] = k.Subsets, ["kid_subset_size"] = k.SubsetSize },
            [string.Create(System.Globalization.CultureInfo.InvariantCulture, $"kid        {k.Mean,12:G6} ± {k.Std:G3}   [{i.Features}, n={i.SampleFeatures.shape[0]} vs {i.Reference.Count}, {k.Subsets} subsets of {k.SubsetSize}]")]);
    });

    public static KidResult Compute(Tensor x, Tensor y, Generator gen, int subsets = 100, int subsetSize = 1000)
    {
        if (x.dim() != 2 || y.dim() != 2 || x.shape[1] != y.shape[1])
            throw new UserError($"KID: expected two feature sets [N, D] of one dimension, got [{string.Join(", ", x.shape)}] and [{string.Join(", ", y.shape)}]");
        if (subsets < 1) throw new UserError($"KID: the number of subsets must be positive, got {subsets}");
        int m = (int)Math.Min(subsetSize, Math.Min(x.shape[0], y.shape[0]));
        if (m < 2) throw new UserError($"KID: needs at least two feature vectors in each set (got {x.shape[0]} and {y.shape[0]})");
        using var scope = NewDisposeScope();
        var a = x.detach().cpu().to_type(ScalarType.Float64);
        var b = y.detach().cpu().to_type(ScalarType.Float64);
        var values = new double[subsets];
        for (int s = 0; s < subsets; s++)
        {
            using var inner = NewDisposeScope();
            var xa = a.index_select(0, randperm(a.shape[0], generator: gen).narrow(0, 0, m));
            var yb = b.index_select(0, randperm(b.shape[0], generator: gen).narrow(0, 0, m));
            values[s] = UnbiasedMmd2(xa, yb);
        }
        double mean = values.Average();
        double std = subsets > 1 ? Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (subsets - 1)) : 0.0;
        return new KidResult(mean, std, subsets, m);
    }

    /// <summary>The cubic polynomial kernel matrix (xᵢᵀyⱼ/d + 1)³.</summary>
    public static Tensor Kernel(Tensor x, Tensor y)
    {
        var k = x.matmul(y.t());
        return k.DivInPlace(x.shape[1]).AddInPlace(1.0).PowInPlace(3);   // in place: one allocation per kernel matrix
    }

    /// <summary>The unbiased MMD² estimate with the cubic kernel for one pair of samples (diagonals of K_xx, K_yy left out).</summary>
    public static double UnbiasedMmd2(Tensor x, Tensor y)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], m = y.shape[0];
        var kxx = Kernel(x, x);
        var kyy = Kernel(y, y);
        var kxy = Kernel(x, y);
        double sxx = (kxx.sum().item<double>() - kxx.diagonal().sum().item<double>()) / (n * (n - 1.0));
        double syy = (kyy.sum().item<double>() - kyy.diagonal().sum().item<double>()) / (m * (m - 1.0));
        return sxx + syy - 2 * kxy.mean().item<double>();
    }

    /// <summary>The biased (V-statistic) estimate, diagonals included: positive in expectation even for one distribution. For comparison in tests.</summary>
    public static double BiasedMmd2(Tensor x, Tensor y)
    {
        using var scope = NewDisposeScope();
        return Kernel(x, x).mean().item<double>() + Kernel(y, y).mean().item<double>() - 2 * Kernel(x, y).mean().item<double>();
    }
}
