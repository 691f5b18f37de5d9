using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Metrics;

/// <summary>
/// Squared maximum mean discrepancy between two samples with a sum of Gaussian (RBF) kernels
/// K(a, b) = Σ_m exp(−‖a − b‖² / (bw·c_m)), c_m = 2^{−2, −1, 0, 1, 2} by default, where the
/// bandwidth bw is the mean off-diagonal squared distance of the pooled samples (computed without
/// gradient). Rows are flattened. Computed in float64 unless the inputs carry a graph.
/// </summary>
public static class Mmd
{
    /// <summary>The registry entry <c>mmd</c> (<see cref="MetricRegistry"/>): unbiased MMD² on random subsets of at most <see cref="EvalOptions.MmdMax"/> rows.</summary>
    public static readonly MetricKind Kind = new("mmd", "unbiased MMD² (five RBF bandwidths) on random subsets", true, i =>
    {
        using var scope = NewDisposeScope();
        var f = i.SampleFeatures;
        var rows = i.Reference.Rows!;
        long n = Math.Min(i.Options.MmdMax, Math.Min(f.shape[0], rows.shape[0]));
        var a = f.index_select(0, randperm(f.shape[0], generator: i.Gen).narrow(0, 0, n));
        var b = rows.index_select(0, randperm(rows.shape[0], generator: i.Gen).narrow(0, 0, n));
        double m = Unbiased(a, b).item<double>();
        return new MetricScore("mmd", new() { ["mmd2"] = m, ["mmd_n"] = n },
            [string.Create(System.Globalization.CultureInfo.InvariantCulture, $"mmd2       {m,12:G6}   [{i.Features}, n={n} vs {n}, unbiased, RBF ×5 bandwidths]")]);
    });

    public static readonly double[] DefaultMultipliers = [0.25, 0.5, 1.0, 2.0, 4.0];

    /// <summary>The biased estimator mean(K_xx) − 2·mean(K_xy) + mean(K_yy) (diagonals included); differentiable in x and y.</summary>
    public static Tensor Biased(Tensor x, Tensor y, double[]? multipliers = null) => Compute(x, y, multipliers, unbiased: false);

    /// <summary>The unbiased estimator (diagonals of K_xx and K_yy left out); can be slightly negative.</summary>
    public static Tensor Unbiased(Tensor x, Tensor y, double[]? multipliers = null) => Compute(x, y, multipliers, unbiased: true);

    private static Tensor Compute(Tensor x, Tensor y, double[]? multipliers, bool unbiased)
    {
        multipliers ??= DefaultMultipliers;
        using var scope = NewDisposeScope();
        var a = x.reshape(x.shape[0], -1);
        var b = y.reshape(y.shape[0], -1);
        if (!a.requires_grad && !b.requires_grad) { a = a.to_type(ScalarType.Float64); b = b.to_type(ScalarType.Float64); }
        long n = a.shape[0], m = b.shape[0];
        if (n < 2 || m < 2) throw new UserError($"MMD needs at least two points in each sample (got {n} and {m})");
        var pooled = cat([a, b], 0);
        var d2 = SquaredDistances(pooled, pooled);
        Tensor bw;
        using (no_grad())
        {
            long p = n + m;
            bw = d2.sum().Div(p * (p - 1)).detach().ClampMin(1e-12);
        }
        // Each bandwidth's temporaries (four (n + m)² matrices) are freed as soon as they are used: kept to the end of
        // the scope they held 3 GB for n = m = 2 000, which the allocator then handed back and page-faulted afresh on
        // the next call. Autograd keeps what the backward pass needs by itself. Same operations, same values.
        var k = zeros_like(d2);
        foreach (var c in multipliers)
        {
            using var scale = bw.Mul(c);
            using var neg = -d2;
            using var ratio = neg / scale;
            using var e = exp(ratio);
            var sum = k.Add(e);
            k.Dispose();
            k = sum;
        }
        var kxx = k.narrow(0, 0, n).narrow(1, 0, n);
        var kyy = k.narrow(0, n, m).narrow(1, n, m);
        var kxy = k.narrow(0, 0, n).narrow(1, n, m);
        Tensor result;
        if (unbiased)
        {
            var sxx = (kxx.sum() - kxx.diagonal().sum()).Div(n * (n - 1));
            var syy = (kyy.sum() - kyy.diagonal().sum()).Div(m * (m - 1));
            result = sxx.Add(syy) - kxy.mean().Mul(2L);
        }
        else result = kxx.mean().Add(kyy.mean()) - kxy.mean().Mul(2L);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>‖a_i − b_j‖² for all pairs, clamped at 0.</summary>
    public static Tensor SquaredDistances(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        var aa = a.Pow(2L).sum(1, keepdim: true);
        var bb = b.Pow(2L).sum(1, keepdim: true).t();
        // The same expression as (aa + bb − 2·a·bᵀ).clamp_min(0), each |a| × |b| temporary freed once used.
        using var ab = a.matmul(b.t());
        using var ab2 = ab.Mul(2L);
        using var sum = aa.Add(bb);
        using var diff = sum - ab2;
        var d = diff.ClampMin(0);
        return d.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Permutation test of "x and y come from one distribution": the fraction of random relabellings
    /// of the pooled sample whose unbiased MMD² is at least the observed one (with the usual +1
    /// correction). Large p = consistent with one distribution.
    /// </summary>
    public static (double Mmd2, double PValue) PermutationTest(Tensor x, Tensor y, int permutations, Generator gen, double[]? multipliers = null)
    {
        var (mmd2, _, p) = PermutationNull(x, y, permutations, gen, multipliers);
        return (mmd2, p);
    }

    /// <summary>
    /// The unbiased MMD² of x and y, the 95th percentile of its permutation distribution and the
    /// permutation p-value (as <see cref="PermutationTest"/>), with the bandwidth of the mean pooled
    /// squared distance (<see cref="MmdBandwidth.Pooled"/>).
    /// </summary>
    public static (double Mmd2, double Null95, double PValue) PermutationNull(Tensor x, Tensor y, int permutations, Generator gen, double[]? multipliers = null)
    {
        var r = PermutationNull(x, y, permutations, gen, MmdBandwidth.Pooled, multipliers);
        return (r.Mmd2, r.Null95, r.PValue);
    }

    /// <summary>What <see cref="PermutationNull(Tensor, Tensor, int, Generator, MmdBandwidth, double[])"/> found, with the bandwidth it used.</summary>
    public sealed record NullResult(double Mmd2, double Null95, double PValue, double Bandwidth);

    /// <summary>
    /// As above with a chosen bandwidth rule (<see cref="MmdBandwidth"/>). The pooled kernel matrix is
    /// computed once: the bandwidth depends only on the pooled set (pooled), on y alone (nearest) or
    /// on nothing (fixed), never on the labels a relabelling shuffles, so it is the same for every
    /// relabelling, and each permutation only re-sums its blocks.
    /// </summary>
    public static NullResult PermutationNull(Tensor x, Tensor y, int permutations, Generator gen, MmdBandwidth bandwidth, double[]? multipliers = null)
    {
        multipliers ??= DefaultMultipliers;
        using var scope = NewDisposeScope();
        var a = x.reshape(x.shape[0], -1).to_type(ScalarType.Float64);
        var b = y.reshape(y.shape[0], -1).to_type(ScalarType.Float64);
        long n = a.shape[0], m = b.shape[0], p = n + m;
        if (n < 2 || m < 2) throw new UserError($"MMD needs at least two points in each sample (got {n} and {m})");
        var pooled = cat([a, b], 0);
        var d2 = SquaredDistances(pooled, pooled);
        double bw = bandwidth.Resolve(d2, n, m);
        var k = zeros_like(d2);
        foreach (var c in multipliers) k.AddInPlace(d2.Div(-bw * c).exp_());
        k.diagonal().Fill(0.0);   // the unbiased estimator leaves the diagonals out (diagonal() is a view)
        var all = ScalarOps.Arange(p);
        double observed = UnbiasedFromKernel(k, all.narrow(0, 0, n), all.narrow(0, n, m));
        var values = new double[permutations];
        int atLeast = 0;
        for (int i = 0; i < permutations; i++)
        {
            using var inner = NewDisposeScope();
            var perm = randperm(p, generator: gen);
            values[i] = UnbiasedFromKernel(k, perm.narrow(0, 0, n), perm.narrow(0, n, m));
            if (values[i] >= observed) atLeast++;
        }
        Array.Sort(values);
        double q95 = permutations > 0 ? values[Math.Min(permutations - 1, (int)Math.Ceiling(0.95 * permutations) - 1)] : double.NaN;
        return new NullResult(observed, q95, (atLeast + 1.0) / (permutations + 1.0), bw);
    }

    // k has a zero diagonal: the block sums are the off-diagonal sums of the unbiased estimator.
    private static double UnbiasedFromKernel(Tensor k, Tensor ia, Tensor ib)
    {
        using var scope = NewDisposeScope();
        long n = ia.shape[0], m = ib.shape[0];
        var rowsA = k.index_select(0, ia);
        var rowsB = k.index_select(0, ib);
        double kxx = rowsA.index_select(1, ia).sum().item<double>() / (n * (n - 1.0));
        double kyy = rowsB.index_select(1, ib).sum().item<double>() / (m * (m - 1.0));
        double kxy = rowsA.index_select(1, ib).sum().item<double>() / (n * (double)m);
        return kxx + kyy - 2 * kxy;
    }
}

/// <summary>
/// How <see cref="Mmd.PermutationNull(Tensor, Tensor, int, Generator, MmdBandwidth, double[])"/> sets
/// the squared-distance bandwidth bw of its RBF kernels exp(−‖a − b‖²/(bw·c)), c = 2^{−2…2}:
/// <list type="bullet">
/// <item><c>pooled</c>: the mean off-diagonal squared distance of the pooled sample (the global spread);</item>
/// <item><c>nearest</c>: the median, over the points of the second sample y (the reference, m points), of the
/// squared distance to their k-th nearest neighbour among the other points of y, k = max(1, ⌊m/100⌋):
/// the radius² of a ball holding about 1 % of y's distribution — its local scale, where small errors
/// of the first sample show. A fixed mass fraction rather than k = 1 keeps it a property of the
/// distribution (the first neighbour's distance shrinks as m grows, as m^{−2/d}). It depends on y
/// alone, not on x;</item>
/// <item>a positive number: that squared distance, fixed.</item>
/// </list>
/// </summary>
public sealed record MmdBandwidth(string Rule, double Value)
{
    public static readonly MmdBandwidth Pooled = new("pooled", double.NaN);
    public static readonly MmdBandwidth Nearest = new("nearest", double.NaN);

    public static MmdBandwidth Fixed(double value) =>
        double.IsFinite(value) && value > 0 ? new("fixed", value) : throw new UserError($"MMD bandwidth: expected a positive number, got {value}");

    /// <summary><c>pooled</c>, <c>nearest</c> or a positive number (a fixed squared-distance bandwidth).</summary>
    public static MmdBandwidth Parse(string text)
    {
        if (text == "pooled") return Pooled;
        if (text == "nearest") return Nearest;
        if (double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double v) && double.IsFinite(v) && v > 0)
            return Fixed(v);
        throw new UserError($"MMD bandwidth '{text}': expected pooled, nearest or a positive number");
    }

    /// <summary>The rule as written on the command line: <c>pooled</c>, <c>nearest</c> or the number.</summary>
    public override string ToString() => Rule == "fixed" ? Value.ToString("R", System.Globalization.CultureInfo.InvariantCulture) : Rule;

    /// <summary>bw for the pooled squared distances d2 of x (rows 0…n−1) and y (rows n…n+m−1).</summary>
    internal double Resolve(Tensor d2, long n, long m)
    {
        using var scope = NewDisposeScope();
        long p = n + m;
        double bw = Rule switch
        {
            "pooled" => d2.sum().item<double>() / (p * (p - 1)),
            "nearest" => NearestNeighbourMedian(d2.narrow(0, n, m).narrow(1, n, m)),
            _ => Value,
        };
        return Math.Max(bw, 1e-12);
    }

    /// <summary>k of the nearest rule for a reference of m points: 1 % of them, at least 1 (so a ball holding ~1 % of the mass).</summary>
    public static int NearestK(long m) => (int)Math.Max(1, Math.Min(m - 1, m / 100));

    private static double NearestNeighbourMedian(Tensor dyy)
    {
        var d = dyy.clone();
        d.diagonal().Fill(double.PositiveInfinity);
        int k = NearestK(d.shape[0]);
        var nn = d.sort(1).Values.select(1, k - 1).data<double>().ToArray();
        Array.Sort(nn);
        int c = nn.Length;
        return c % 2 == 1 ? nn[c / 2] : 0.5 * (nn[c / 2 - 1] + nn[c / 2]);
    }
}
