using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Metrics;

/// <summary>Improved precision and recall of generated samples against real ones.</summary>
public sealed record PrecisionRecallResult(double Precision, double Recall, int K);

/// <summary>
/// Improved precision and recall (Kynkäänniemi et al., 2019) in feature space. Each set is taken as
/// an estimate of its distribution's support: the union of balls around its points, each ball's radius
/// the distance to the point's k-th nearest neighbour within the same set (itself excluded; k = 3 by
/// default, as in the paper). Precision is the fraction of generated points inside the real support
/// (sample quality), recall the fraction of real points inside the generated support (coverage).
/// A point on a ball's boundary counts as inside (≤). Distances are Euclidean (<c>cdist</c>), in
/// float32 — features are float32 and only the order of distances matters — in row blocks so that
/// memory stays O(block × N).
/// </summary>
public static class PrecisionRecall
{
    /// <summary>The registry entry <c>pr</c> (<see cref="MetricRegistry"/>): improved precision and recall with k-NN balls.</summary>
    public static readonly MetricKind Kind = new("pr", "precision and recall (k-nearest-neighbour balls)", true, i =>
    {
        var pr = Compute(i.Reference.Rows!, i.SampleFeatures, i.Options.K);
        string tag = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"[{i.Features}, n={i.SampleFeatures.shape[0]} vs {i.Reference.Count}, k={pr.K}]");
        return new MetricScore("pr", new() { ["precision"] = pr.Precision, ["recall"] = pr.Recall, ["pr_k"] = pr.K },
            [string.Create(System.Globalization.CultureInfo.InvariantCulture, $"precision  {pr.Precision,12:F4}   {tag}"),
             string.Create(System.Globalization.CultureInfo.InvariantCulture, $"recall     {pr.Recall,12:F4}   {tag}")]);
    });

    public static PrecisionRecallResult Compute(Tensor real, Tensor fake, int k = 3, int block = 1024)
    {
        if (real.dim() != 2 || fake.dim() != 2 || real.shape[1] != fake.shape[1])
            throw new UserError($"precision/recall: expected two feature sets [N, D] of one dimension, got [{string.Join(", ", real.shape)}] and [{string.Join(", ", fake.shape)}]");
        if (k < 1) throw new UserError($"precision/recall: k must be positive, got {k}");
        if (real.shape[0] <= k || fake.shape[0] <= k)
            throw new UserError($"precision/recall: each set needs more than k = {k} points (got {real.shape[0]} and {fake.shape[0]})");
        using var scope = NewDisposeScope();
        var r = real.detach().cpu().to_type(ScalarType.Float32);
        var f = fake.detach().cpu().to_type(ScalarType.Float32);
        var rRadii = KthNeighbourDistances(r, k, block);
        var fRadii = KthNeighbourDistances(f, k, block);
        double precision = FractionInside(f, r, rRadii, block);
        double recall = FractionInside(r, f, fRadii, block);
        return new PrecisionRecallResult(precision, recall, k);
    }

    /// <summary>For each row, the distance to its k-th nearest other row (the row itself excluded).</summary>
    public static Tensor KthNeighbourDistances(Tensor x, int k, int block = 1024)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0];
        var parts = new List<Tensor>();
        for (long i = 0; i < n; i += block)
        {
            // Each block's distances are freed before the next block's (only the k-th distances are kept), so that
            // memory stays O(block × N) rather than O(N²).
            using var inner = NewDisposeScope();
            long b = Math.Min(block, n - i);
            var d = Distances(x.narrow(0, i, b), x);
            // The point itself is at distance 0 (up to rounding): take the (k+1)-th smallest, after forcing the self-distance to 0.
            d.narrow(1, i, b).diagonal().Fill(0.0);
            var (vals, _) = d.topk(k + 1, dim: 1, largest: false, sorted: true);
            parts.Add(vals.select(1, k).contiguous().MoveToOuterDisposeScope());
        }
        return cat(parts, 0).MoveToOuterDisposeScope();
    }

    /// <summary>The fraction of query rows within distance radius_j of at least one support row j.</summary>
    public static double FractionInside(Tensor query, Tensor support, Tensor radii, int block = 1024)
    {
        using var scope = NewDisposeScope();
        long n = query.shape[0], inside = 0;
        var rr = radii.unsqueeze(0);
        for (long i = 0; i < n; i += block)
        {
            using var inner = NewDisposeScope();
            long b = Math.Min(block, n - i);
            var d = Distances(query.narrow(0, i, b), support);
            inside += (d <= rr).any(1).sum().item<long>();
        }
        return inside / (double)n;
    }

    private static Tensor Distances(Tensor a, Tensor b) => cdist(a, b);
}
