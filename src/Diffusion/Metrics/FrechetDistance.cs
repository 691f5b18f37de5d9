using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Metrics;

/// <summary>The Gaussian summary of a feature set: mean and (unbiased, N − 1) covariance in float64.</summary>
public sealed class FeatureStatistics : IDisposable
{
    /// <summary>Mean feature, float64 [D].</summary>
    public Tensor Mean { get; }
    /// <summary>Covariance, float64 [D, D], normalised by N − 1 (as <c>np.cov</c> and pytorch-fid).</summary>
    public Tensor Covariance { get; }
    /// <summary>Number of feature vectors the statistics were computed from (0 when unknown, e.g. a foreign stats file).</summary>
    public long Count { get; }
    public long Dim => Mean.shape[0];

    public FeatureStatistics(Tensor mean, Tensor covariance, long count)
    {
        if (mean.dim() != 1 || covariance.dim() != 2 || covariance.shape[0] != mean.shape[0] || covariance.shape[1] != mean.shape[0])
            throw new UserError($"feature statistics: expected a mean of shape [D] and a covariance of shape [D, D], got [{string.Join(", ", mean.shape)}] and [{string.Join(", ", covariance.shape)}]");
        Mean = mean.to_type(ScalarType.Float64).cpu().clone().DetachFromDisposeScope();
        Covariance = covariance.to_type(ScalarType.Float64).cpu().clone().DetachFromDisposeScope();
        Count = count;
    }

    /// <summary>Mean and covariance of the rows of <paramref name="features"/> ([N, D], N ≥ 2), accumulated in float64.</summary>
    public static FeatureStatistics FromFeatures(Tensor features)
    {
        if (features.dim() != 2) throw new UserError($"feature statistics: expected features of shape [N, D], got [{string.Join(", ", features.shape)}]");
        long n = features.shape[0];
        if (n < 2) throw new UserError($"feature statistics: need at least two feature vectors, got {n}");
        using var scope = NewDisposeScope();
        var x = features.detach().cpu().to_type(ScalarType.Float64);
        var mu = x.mean([0]);
        var c = x - mu;
        var cov = c.t().matmul(c).Div(n - 1);
        return new FeatureStatistics(mu, cov, n);
    }

    public void Dispose()
    {
        Mean.Dispose();
        Covariance.Dispose();
    }
}

/// <summary>
/// The Fréchet distance between two Gaussians (the "FID" when the Gaussians summarise Inception
/// features): d² = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2·tr √(Σ₁^{1/2} Σ₂ Σ₁^{1/2}).
/// The usual form writes the last term as tr √(Σ₁Σ₂); Σ₁Σ₂ is not symmetric, and a general matrix
/// square root of it (scipy's sqrtm) can return complex parts or fail when the covariances are
/// (nearly) singular, as they are whenever there are fewer samples than features. The symmetric form
/// has the same eigenvalues and needs only symmetric eigen-decompositions (<c>torch.linalg.eigh</c> in
/// float64): Σ₁^{1/2} from the eigenvalues of Σ₁ clamped at 0, then the eigenvalues of the symmetric
/// positive semi-definite Σ₁^{1/2} Σ₂ Σ₁^{1/2}, clamped at 0, whose square roots sum to the trace term.
/// Everything stays real, and the result is clamped at 0 against rounding.
/// </summary>
public static class FrechetDistance
{
    /// <summary>The registry entry <c>fid</c> (<see cref="MetricRegistry"/>).</summary>
    public static readonly MetricKind Kind = new("fid", "Fréchet distance between Gaussians fitted to the features", false, i =>
    {
        using var own = i.SampleStatistics is null ? FeatureStatistics.FromFeatures(i.SampleFeatures) : null;
        double f = Compute(i.SampleStatistics ?? own!, i.Reference.Statistics);
        return new MetricScore("fid", new() { ["fid"] = f },
            [string.Create(System.Globalization.CultureInfo.InvariantCulture, $"fid        {f,12:G6}   [{i.Features}, n={i.SampleFeatures.shape[0]} vs {i.Reference.Count}]")]);
    });

    public static double Compute(FeatureStatistics a, FeatureStatistics b)
    {
        if (a.Dim != b.Dim) throw new UserError($"Fréchet distance: the statistics have different feature dimensions ({a.Dim} and {b.Dim})");
        return Compute(a.Mean, a.Covariance, b.Mean, b.Covariance);
    }

    /// <summary>d² between N(μ₁, Σ₁) and N(μ₂, Σ₂), computed in float64.</summary>
    public static double Compute(Tensor mu1, Tensor sigma1, Tensor mu2, Tensor sigma2)
    {
        using var scope = NewDisposeScope();
        var m1 = mu1.to_type(ScalarType.Float64).cpu();
        var m2 = mu2.to_type(ScalarType.Float64).cpu();
        var s1 = sigma1.to_type(ScalarType.Float64).cpu();
        var s2 = sigma2.to_type(ScalarType.Float64).cpu();
        double meanTerm = (m1 - m2).Pow(2L).sum().item<double>();
        double trace = s1.trace().item<double>() + s2.trace().item<double>();
        double d2 = meanTerm + trace - 2 * TraceSqrtProduct(s1, s2);
        return Math.Max(0.0, d2);
    }

    /// <summary>tr √(Σ₁^{1/2} Σ₂ Σ₁^{1/2}) (= tr √(Σ₁Σ₂)) for symmetric positive semi-definite Σ₁, Σ₂.</summary>
    public static double TraceSqrtProduct(Tensor sigma1, Tensor sigma2)
    {
        using var scope = NewDisposeScope();
        var s1 = Symmetrise(sigma1.to_type(ScalarType.Float64));
        var s2 = Symmetrise(sigma2.to_type(ScalarType.Float64));
        var root1 = SymmetricSqrt(s1);
        var m = Symmetrise(root1.matmul(s2).matmul(root1));
        var ev = linalg.eigvalsh(m).ClampMin(0);
        return ev.sqrt().sum().item<double>();
    }

    /// <summary>The symmetric positive semi-definite square root of a symmetric matrix (eigenvalues clamped at 0).</summary>
    public static Tensor SymmetricSqrt(Tensor a)
    {
        using var scope = NewDisposeScope();
        var (l, v) = linalg.eigh(Symmetrise(a.to_type(ScalarType.Float64)));
        var r = (v * l.ClampMin(0).sqrt().unsqueeze(0)).matmul(v.t());
        return r.MoveToOuterDisposeScope();
    }

    private static Tensor Symmetrise(Tensor a) => a.Add(a.t()).Mul(0.5);
}
