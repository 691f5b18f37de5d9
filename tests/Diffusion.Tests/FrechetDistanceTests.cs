using Diffusion.Metrics;
using static TorchSharp.torch;

namespace Diffusion.Tests;

public class FrechetDistanceTests
{
    private static Tensor Vec(params double[] v) => tensor(v, dtype: ScalarType.Float64);
    private static Tensor Mat(double[,] m) => tensor(m, dtype: ScalarType.Float64);

    /// <summary>A random orthogonal matrix (QR of a Gaussian matrix) from a seeded generator.</summary>
    private static Tensor Orthogonal(int d, ulong seed)
    {
        using var g = new Generator(seed);
        using var a = randn([d, d], dtype: ScalarType.Float64, generator: g);
        var (q, _) = linalg.qr(a);
        return q;
    }

    private static Tensor Rotated(Tensor q, double[] eigenvalues) =>
        q.matmul(diag(Vec(eigenvalues))).matmul(q.t());

    [Fact]
    public void Diagonal_covariances_match_the_closed_form()
    {
        double[] a = [1.0, 2.0, 0.5, 3.0, 0.1], b = [2.0, 0.5, 0.5, 1.0, 0.4];
        double[] m1 = [0.0, 1.0, -1.0, 0.5, 2.0], m2 = [0.3, 1.0, 0.0, -0.5, 2.0];
        double expected = 0;
        for (int i = 0; i < 5; i++) expected += (m1[i] - m2[i]) * (m1[i] - m2[i]) + Math.Pow(Math.Sqrt(a[i]) - Math.Sqrt(b[i]), 2);
        double d2 = FrechetDistance.Compute(Vec(m1), diag(Vec(a)), Vec(m2), diag(Vec(b)));
        Assert.Equal(expected, d2, 12);
    }

    [Fact]
    public void Commuting_nearly_singular_covariances_match_the_closed_form()
    {
        // Σ₁ = Q diag(a) Qᵀ, Σ₂ = Q diag(b) Qᵀ share eigenvectors: d² = Σ (√aᵢ − √bᵢ)² + ‖Δμ‖².
        // Eigenvalues down to 1e-14 and exactly 0: the case where a general sqrtm of Σ₁Σ₂ goes complex.
        int d = 8;
        double[] a = [4.0, 1.0, 0.25, 1e-3, 1e-8, 1e-12, 1e-14, 0.0];
        double[] b = [1.0, 1e-10, 0.25, 2.0, 0.0, 1e-6, 3.0, 1e-14];
        using var q = Orthogonal(d, 7);
        using var s1 = Rotated(q, a);
        using var s2 = Rotated(q, b);
        using var mu1 = zeros(d, dtype: ScalarType.Float64);
        using var mu2 = full(d, 0.1, dtype: ScalarType.Float64);
        double expected = d * 0.01;
        for (int i = 0; i < d; i++) expected += Math.Pow(Math.Sqrt(a[i]) - Math.Sqrt(b[i]), 2);
        double d2 = FrechetDistance.Compute(mu1, s1, mu2, s2);
        // The rounding of the rotated matrices (≈1e-16·‖Σ‖) perturbs √λ of the tiny eigenvalues by up to ≈1e-8 each.
        Assert.True(Math.Abs(d2 - expected) < 1e-7, $"d² = {d2:R}, closed form {expected:R}");
        Assert.True(d2 >= 0);
    }

    [Fact]
    public void Non_commuting_2x2_covariances_match_the_closed_form()
    {
        // For 2×2 PSD matrices tr √(Σ₁Σ₂) = √(tr(Σ₁Σ₂) + 2·√(det Σ₁·det Σ₂)) (the eigenvalues of Σ₁Σ₂ are real and ≥ 0).
        (double[,] S1, double[,] S2)[] cases =
        [
            (new double[,] { { 2.0, 0.7 }, { 0.7, 1.0 } }, new double[,] { { 0.5, -0.3 }, { -0.3, 1.5 } }),
            // nearly singular: two almost rank-one covariances along different directions
            (new double[,] { { 1.0, 1.0 - 1e-9 }, { 1.0 - 1e-9, 1.0 } }, new double[,] { { 1.0, 0.0 }, { 0.0, 1e-12 } }),
            // exactly singular on one side
            (new double[,] { { 1.0, 2.0 }, { 2.0, 4.0 } }, new double[,] { { 3.0, 0.5 }, { 0.5, 1.0 } }),
        ];
        foreach (var (a, b) in cases)
        {
            double tr12 = a[0, 0] * b[0, 0] + a[0, 1] * b[1, 0] + a[1, 0] * b[0, 1] + a[1, 1] * b[1, 1];
            double det1 = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0], det2 = b[0, 0] * b[1, 1] - b[0, 1] * b[1, 0];
            double trSqrt = Math.Sqrt(tr12 + 2 * Math.Sqrt(Math.Max(0, det1) * Math.Max(0, det2)));
            double expected = 0.25 + 1.0 + a[0, 0] + a[1, 1] + b[0, 0] + b[1, 1] - 2 * trSqrt;
            double d2 = FrechetDistance.Compute(Vec(0, 0), Mat(a), Vec(0.5, 1.0), Mat(b));
            // Near a singular product the square root of an eigenvalue near 0 is ill-conditioned: a rounding error ε‖M‖
            // in the eigenvalue becomes √(ε‖M‖) ≈ 1e-8 in its root, for any float64 method; hence 1e-7, not 1e-12.
            Assert.True(Math.Abs(d2 - expected) < 1e-7, $"d² = {d2:R}, closed form {expected:R}");
            Assert.True(Math.Abs(trSqrt - FrechetDistance.TraceSqrtProduct(Mat(a), Mat(b))) < 1e-7);
        }
    }

    [Theory]
    [InlineData(500, 16)]
    [InlineData(40, 64)]   // fewer samples than features: both covariances singular (rank 39)
    public void Identical_feature_sets_give_zero(int n, int d)
    {
        using var g = new Generator(3);
        using var x = randn([n, d], dtype: ScalarType.Float64, generator: g) * 2.0 + 1.0;
        using var s = FeatureStatistics.FromFeatures(x);
        using var s2 = FeatureStatistics.FromFeatures(x.clone());
        double d2 = FrechetDistance.Compute(s, s2);
        double scale = s.Covariance.trace().item<double>();
        Assert.True(d2 >= 0 && d2 < 1e-9 * scale, $"d² = {d2:R} for identical sets (tr Σ = {scale:F1})");
    }

    [Fact]
    public void Statistics_are_the_mean_and_the_unbiased_covariance()
    {
        using var x = tensor(new double[,] { { 1, 2 }, { 3, 1 }, { 2, 6 }, { 0, 3 } });
        using var s = FeatureStatistics.FromFeatures(x.to_type(ScalarType.Float32));
        Assert.Equal(ScalarType.Float64, s.Covariance.dtype);
        Assert.Equal([1.5, 3.0], TestUtil.Row(s.Mean));
        // np.cov(x, rowvar=False): var₀ = (0.25+2.25+0.25+2.25)/3, var₁ = (1+4+9+0)/3, cov = (0.5−3+1.5−0)/3
        double[] expected = [5.0 / 3, -1.0 / 3, -1.0 / 3, 14.0 / 3];
        foreach (var (e, a) in expected.Zip(TestUtil.Row(s.Covariance.flatten()))) Assert.Equal(e, a, 12);
        Assert.Equal(4, s.Count);
    }

    [Fact]
    public void Samples_of_two_gaussians_approach_the_closed_form()
    {
        // Large samples: the plug-in estimate approaches the population d² (here ‖Δμ‖² + Σ(√a − √b)² = 1 + 4·(√2 − 1)²).
        using var g = new Generator(11);
        int n = 20000, d = 4;
        using var x = randn([n, d], dtype: ScalarType.Float64, generator: g);
        using var y = randn([n, d], dtype: ScalarType.Float64, generator: g) * Math.Sqrt(2.0) + 0.5;
        using var sx = FeatureStatistics.FromFeatures(x);
        using var sy = FeatureStatistics.FromFeatures(y);
        double expected = 1.0 + 4 * Math.Pow(Math.Sqrt(2) - 1, 2);
        Assert.Equal(expected, FrechetDistance.Compute(sx, sy), 1);
    }
}
