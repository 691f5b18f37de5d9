using Diffusion.Models;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Metrics;

/// <summary>Scores of samples against a known Gaussian mixture (the toy grid).</summary>
public sealed record MixtureScores(int Samples, double FractionWithin3Sigma, int ModesCovered, int Modes, double MeanLogLikelihood);

public static class MixtureMetrics
{
    /// <summary>
    /// For each sample, the nearest mode (Euclidean) and whether the sample lies within 3σ of it
    /// (‖x − μ_k‖ ≤ 3·s_k). A mode is covered when at least <paramref name="minPerMode"/> samples lie
    /// within 3σ of it. Also the mean log-likelihood of the samples under the true mixture.
    /// </summary>
    public static MixtureScores Score(GaussianMixture gmm, Tensor samples, int minPerMode = 1)
    {
        using var scope = NewDisposeScope();
        var x = samples.detach().cpu().to_type(ScalarType.Float64).reshape(samples.shape[0], -1);
        if (x.shape[1] != gmm.Dim) throw new UserError($"samples have dimension {x.shape[1]}, the mixture {gmm.Dim}");
        var mu = tensor(gmm.Means.SelectMany(m => m).ToArray(), dtype: ScalarType.Float64).reshape(gmm.Components, gmm.Dim);
        var d = cdist(x, mu);                            // [N, K]
        var (dmin, k) = d.min(1);
        var s = tensor(gmm.Stds, dtype: ScalarType.Float64).index_select(0, k);
        var within = dmin <= s.Mul(3L);
        double frac = within.to_type(ScalarType.Float64).mean().item<double>();
        var counts = bincount(k.masked_select(within), minlength: gmm.Components);
        int covered = (int)counts.Ge(minPerMode).sum().item<long>();
        var one = tensor(1.0, dtype: ScalarType.Float64);
        var zero = tensor(0.0, dtype: ScalarType.Float64);
        double ll = gmm.LogDensity(x, one, zero).mean().item<double>();
        return new MixtureScores((int)x.shape[0], frac, covered, gmm.Components, ll);
    }
}
