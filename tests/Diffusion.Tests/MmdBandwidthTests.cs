using Diffusion.Metrics;
using Diffusion.Models;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>The MMD permutation test's bandwidth rules (pooled, nearest, fixed) on samples whose answer is known.</summary>
public class MmdBandwidthTests(Xunit.Abstractions.ITestOutputHelper output)
{
    /// <summary>A 3×3 grid of modes one apart with std 0.05: the pooled spread (mean squared distance 8/3) is ~1 000 σ².</summary>
    private static GaussianMixture TightGrid(double std = 0.05)
    {
        var means = new List<double[]>();
        for (int i = -1; i <= 1; i++) for (int j = -1; j <= 1; j++) means.Add([i * 1.0, j * 1.0]);
        return new GaussianMixture(Enumerable.Repeat(1.0, means.Count).ToArray(), means.ToArray(), Enumerable.Repeat(std, means.Count).ToArray());
    }

    [Fact]
    public void Nearest_sees_a_small_error_on_tight_modes_that_pooled_does_not()
    {
        var g = TightGrid();
        const int n = 500;
        using var gen = new Generator(11);
        using var y = g.Sample(n, gen);
        // The "sample": every point moved by half a mode's σ along the first axis — a small systematic error.
        using var shift = tensor(new[] { 0.025, 0.0 }, dtype: ScalarType.Float64).unsqueeze(0);
        using var x = g.Sample(n, gen) + shift;

        var pooled = Mmd.PermutationNull(x, y, 100, gen, MmdBandwidth.Pooled);
        var nearest = Mmd.PermutationNull(x, y, 100, gen, MmdBandwidth.Nearest);
        string msg = $"pooled: mmd²={pooled.Mmd2:G3} null95={pooled.Null95:G3} p={pooled.PValue:F2} bw={pooled.Bandwidth:G3}; "
                   + $"nearest: mmd²={nearest.Mmd2:G3} null95={nearest.Null95:G3} p={nearest.PValue:F2} bw={nearest.Bandwidth:G3}";
        output.WriteLine("shift 0.5σ: " + msg);
        Assert.True(pooled.Mmd2 <= pooled.Null95, "pooled should be blind: " + msg);
        Assert.True(nearest.Mmd2 > nearest.Null95 && nearest.PValue < 0.05, "nearest should see the shift: " + msg);
        // Pooled: the mean squared distance of the grid, 2·2·Var = 8/3 (Var = 2/3 per axis); nearest: a fraction of σ² = 0.0025.
        Assert.InRange(pooled.Bandwidth, 2.3, 3.0);
        Assert.InRange(nearest.Bandwidth, 1e-5, 0.0025);

        // Modes 30% too wide: the same story.
        using var wide = TightGrid(0.065).Sample(n, gen);
        var pw = Mmd.PermutationNull(wide, y, 100, gen, MmdBandwidth.Pooled);
        var nw = Mmd.PermutationNull(wide, y, 100, gen, MmdBandwidth.Nearest);
        msg = $"pooled: mmd²={pw.Mmd2:G3} null95={pw.Null95:G3} p={pw.PValue:F2}; nearest: mmd²={nw.Mmd2:G3} null95={nw.Null95:G3} p={nw.PValue:F2}";
        output.WriteLine("σ ×1.3: " + msg);
        Assert.True(pw.Mmd2 <= pw.Null95, "pooled should be blind: " + msg);
        Assert.True(nw.Mmd2 > nw.Null95 && nw.PValue < 0.05, "nearest should see the wider modes: " + msg);
    }

    [Fact]
    public void Nearest_raises_few_false_alarms_on_two_samples_of_one_distribution()
    {
        var g = TightGrid();
        const int seeds = 20;
        int above = 0;
        var ps = new List<double>();
        for (int s = 0; s < seeds; s++)
        {
            using var gen = new Generator((ulong)(100 + s));
            using var x = g.Sample(300, gen);
            using var y = g.Sample(300, gen);
            var r = Mmd.PermutationNull(x, y, 100, gen, MmdBandwidth.Nearest);
            if (r.Mmd2 > r.Null95) above++;
            ps.Add(r.PValue);
        }
        output.WriteLine($"{above} of {seeds} above null95; mean p = {ps.Average():F2}");
        // Under the null about 1 in 20 lands above its 95th percentile; 4 or more of 20 has probability ≈ 1.6 %.
        Assert.True(above <= 3, $"{above} of {seeds} above the null's 95th percentile; p = " + string.Join(", ", ps.Select(p => p.ToString("F2"))));
        Assert.InRange(ps.Average(), 0.3, 0.7);   // p-values roughly uniform
    }

    [Fact]
    public void Fixed_and_nearest_bandwidths_match_a_computation_by_hand()
    {
        double[][] xs = [[0.0, 0.0], [1.0, 0.5], [0.2, -0.4]];
        double[][] ys = [[0.3, 0.1], [2.0, 1.0], [-0.5, 0.7], [0.9, -1.1]];
        static double D2(double[] a, double[] b) => (a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]);
        static double ByHand(double[][] x, double[][] y, double bw)
        {
            double K(double[] a, double[] b) => new[] { 0.25, 0.5, 1.0, 2.0, 4.0 }.Sum(c => Math.Exp(-D2(a, b) / (bw * c)));
            int n = x.Length, m = y.Length;
            double kxx = 0, kyy = 0, kxy = 0;
            for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) if (i != j) kxx += K(x[i], x[j]);
            for (int i = 0; i < m; i++) for (int j = 0; j < m; j++) if (i != j) kyy += K(y[i], y[j]);
            for (int i = 0; i < n; i++) for (int j = 0; j < m; j++) kxy += K(x[i], y[j]);
            return kxx / (n * (n - 1.0)) + kyy / (m * (m - 1.0)) - 2 * kxy / (n * (double)m);
        }
        using var x = tensor(xs.SelectMany(r => r).ToArray(), [3, 2], ScalarType.Float64);
        using var y = tensor(ys.SelectMany(r => r).ToArray(), [4, 2], ScalarType.Float64);
        using var gen = new Generator(1);

        var f = Mmd.PermutationNull(x, y, 20, gen, MmdBandwidth.Fixed(0.7));
        Assert.Equal(0.7, f.Bandwidth);
        Assert.Equal(ByHand(xs, ys, 0.7), f.Mmd2, 12);
        Assert.Equal(MmdBandwidth.Parse("0.7"), MmdBandwidth.Fixed(0.7));

        // k = 1 % of the reference, at least 1.
        Assert.Equal(1, MmdBandwidth.NearestK(4));
        Assert.Equal(1, MmdBandwidth.NearestK(128));
        Assert.Equal(10, MmdBandwidth.NearestK(1000));
        // nearest: y's nearest-neighbour squared distances, their median (even count: the mean of the middle two).
        var nn = ys.Select((a, i) => ys.Where((_, j) => j != i).Min(b => D2(a, b))).OrderBy(v => v).ToArray();
        double median = 0.5 * (nn[1] + nn[2]);
        var r = Mmd.PermutationNull(x, y, 20, gen, MmdBandwidth.Nearest);
        Assert.Equal(median, r.Bandwidth, 12);
        Assert.Equal(ByHand(xs, ys, median), r.Mmd2, 12);
        // …and it is y's alone: another x leaves it unchanged.
        using var x2 = x * 3 + 1;
        Assert.Equal(median, Mmd.PermutationNull(x2, y, 5, gen, MmdBandwidth.Nearest).Bandwidth, 12);

        // pooled: the mean off-diagonal squared distance of all seven points (today's rule, unchanged).
        var all = xs.Concat(ys).ToArray();
        double mean = all.SelectMany((a, i) => all.Where((_, j) => j != i).Select(b => D2(a, b))).Average();
        var p = Mmd.PermutationNull(x, y, 20, gen, MmdBandwidth.Pooled);
        Assert.Equal(mean, p.Bandwidth, 12);
        Assert.Equal(ByHand(xs, ys, mean), p.Mmd2, 12);

        Assert.Throws<UserError>(() => MmdBandwidth.Parse("-1"));
        Assert.Throws<UserError>(() => MmdBandwidth.Parse("median"));
    }
}
