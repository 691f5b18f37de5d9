using Diffusion.Metrics;
using static TorchSharp.torch;

namespace Diffusion.Tests;

public class KidTests
{
    // Moment tensors of N(μ, Σ): M₁ = μ, M₂ = μμᵀ + Σ, M₃ᵢⱼₖ = μᵢμⱼμₖ + μᵢΣⱼₖ + μⱼΣᵢₖ + μₖΣᵢⱼ.
    private static (double[] M1, double[,] M2, double[,,] M3) Moments(double[] mu, double[,] s)
    {
        int d = mu.Length;
        var m2 = new double[d, d];
        var m3 = new double[d, d, d];
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
            {
                m2[i, j] = mu[i] * mu[j] + s[i, j];
                for (int k = 0; k < d; k++)
                    m3[i, j, k] = mu[i] * mu[j] * mu[k] + mu[i] * s[j, k] + mu[j] * s[i, k] + mu[k] * s[i, j];
            }
        return (mu, m2, m3);
    }

    /// <summary>
    /// Population MMD² with k(x, y) = (xᵀy/d + 1)³ = Σₚ cₚ (xᵀy)ᵖ/dᵖ (c = 1, 3, 3, 1):
    /// E(xᵀy)ᵖ = ⟨E x^⊗p, E y^⊗p⟩ for independent x, y, so MMD² = Σₚ cₚ ‖Mₚ(X) − Mₚ(Y)‖² / dᵖ.
    /// </summary>
    private static double PopulationMmd2(double[] mux, double[,] sx, double[] muy, double[,] sy)
    {
        int d = mux.Length;
        var (a1, a2, a3) = Moments(mux, sx);
        var (b1, b2, b3) = Moments(muy, sy);
        double t1 = 0, t2 = 0, t3 = 0;
        for (int i = 0; i < d; i++)
        {
            t1 += Math.Pow(a1[i] - b1[i], 2);
            for (int j = 0; j < d; j++)
            {
                t2 += Math.Pow(a2[i, j] - b2[i, j], 2);
                for (int k = 0; k < d; k++) t3 += Math.Pow(a3[i, j, k] - b3[i, j, k], 2);
            }
        }
        return t3 / (d * d * d) + 3 * t2 / (d * d) + 3 * t1 / d;
    }

    private static Tensor Draw(double[] mu, double[,] s, int n, Generator g)
    {
        var l = linalg.cholesky(tensor(s, dtype: ScalarType.Float64));
        return randn([n, mu.Length], dtype: ScalarType.Float64, generator: g).matmul(l.t()) + tensor(mu, dtype: ScalarType.Float64);
    }

    [Fact]
    public void The_estimator_is_unbiased_against_the_closed_form()
    {
        double[] mux = [0.0, 0.5, -0.2], muy = [0.3, 0.4, 0.0];
        double[,] sx = { { 1.0, 0.3, 0.0 }, { 0.3, 0.8, 0.1 }, { 0.0, 0.1, 0.5 } };
        double[,] sy = { { 1.2, 0.0, 0.2 }, { 0.0, 0.6, 0.0 }, { 0.2, 0.0, 0.7 } };
        double pop = PopulationMmd2(mux, sx, muy, sy);
        double popSame = 0.0;
        // Many independent pairs of small samples: the average of the unbiased estimates converges to the population value.
        using var g = new Generator(5);
        int reps = 1500, m = 40;
        var diff = new double[reps];
        var same = new double[reps];
        var sameBiased = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            using var scope = NewDisposeScope();
            var x = Draw(mux, sx, m, g);
            var y = Draw(muy, sy, m, g);
            var x2 = Draw(mux, sx, m, g);
            diff[r] = Kid.UnbiasedMmd2(x, y);
            same[r] = Kid.UnbiasedMmd2(x, x2);
            sameBiased[r] = Kid.BiasedMmd2(x, x2);
        }
        static (double Mean, double Se) Stat(double[] v)
        {
            double mean = v.Average();
            return (mean, Math.Sqrt(v.Sum(a => (a - mean) * (a - mean)) / (v.Length - 1) / v.Length));
        }
        var (md, sed) = Stat(diff);
        var (ms, ses) = Stat(same);
        var (mb, seb) = Stat(sameBiased);
        Assert.True(Math.Abs(md - pop) < 4 * sed, $"mean {md:G4} ± {sed:G2}, population MMD² {pop:G4}");
        Assert.True(Math.Abs(ms - popSame) < 4 * ses, $"one distribution: mean {ms:G4} ± {ses:G2}, expected 0");
        // The biased (V-statistic) estimator on the same draws is clearly positive: the test can tell them apart.
        Assert.True(mb > 10 * seb, $"biased estimator mean {mb:G4} ± {seb:G2}");
    }

    [Fact]
    public void Subset_kid_is_near_zero_for_one_distribution_and_positive_for_two()
    {
        using var g = new Generator(9);
        using var x = randn([3000, 16], dtype: ScalarType.Float64, generator: g);
        using var y = randn([3000, 16], dtype: ScalarType.Float64, generator: g);
        using var z = randn([3000, 16], dtype: ScalarType.Float64, generator: g) * 1.3 + 0.2;
        using var g1 = new Generator(1);
        var same = Kid.Compute(x, y, g1, subsets: 50, subsetSize: 500);
        var diff = Kid.Compute(x, z, g1, subsets: 50, subsetSize: 500);
        Assert.Equal(500, same.SubsetSize);
        Assert.True(Math.Abs(same.Mean) < 2 * same.Std, $"same distribution: {same.Mean:G3} ± {same.Std:G3}");
        Assert.True(diff.Mean > 5 * diff.Std, $"different distributions: {diff.Mean:G3} ± {diff.Std:G3}");
        // Deterministic given the generator's seed; the subset size falls back to the smaller set.
        using var g2 = new Generator(1);
        Assert.Equal(same.Mean, Kid.Compute(x, y, g2, subsets: 50, subsetSize: 500).Mean);
        using var g3 = new Generator(1);
        Assert.Equal(100, Kid.Compute(x.narrow(0, 0, 100), y, g3, subsets: 3, subsetSize: 500).SubsetSize);
    }
}
