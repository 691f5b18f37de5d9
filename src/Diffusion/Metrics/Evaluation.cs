using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Diffusion.Metrics;

/// <summary>Which scores to compute and how.</summary>
public sealed record EvalOptions
{
    public static readonly string[] MetricNames = ["fid", "kid", "pr", "mmd"];

    public IReadOnlyList<string> Metrics { get; init; } = MetricNames;
    public int KidSubsets { get; init; } = 100;
    public int KidSubsetSize { get; init; } = 1000;
    /// <summary>k of the k-nearest-neighbour balls of precision/recall.</summary>
    public int K { get; init; } = 3;
    /// <summary>MMD² uses at most this many rows of each set (a random subset): its kernel matrix is (2n)².</summary>
    public int MmdMax { get; init; } = 2000;
    public long Seed { get; init; } = 0;
}

/// <summary>
/// Scores of a sample set against a <see cref="ReferenceSet"/> in one feature space, with the extractor
/// and the counts they were computed with (printed beside every number).
/// </summary>
public sealed class EvalResult
{
    public required string Features { get; init; }
    public required long N { get; init; }
    public required string Reference { get; init; }
    public required long ReferenceN { get; init; }
    public double? Fid { get; set; }
    public KidResult? Kid { get; set; }
    public PrecisionRecallResult? PrecisionRecall { get; set; }
    public double? Mmd2 { get; set; }
    public long MmdN { get; set; }
    public MixtureScores? Mixture { get; set; }

    /// <summary>One flat JSON object: {"features": "raw", "n": 3000, "fid": 1.23, …}.</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["features"] = Features,
            ["n"] = N,
            ["reference"] = Reference,
            ["reference_n"] = ReferenceN,
        };
        if (Fid is double f) o["fid"] = f;
        if (Kid is { } k)
        {
            o["kid"] = k.Mean;
            o["kid_std"] = k.Std;
            o["kid_subsets"] = k.Subsets;
            o["kid_subset_size"] = k.SubsetSize;
        }
        if (PrecisionRecall is { } pr)
        {
            o["precision"] = pr.Precision;
            o["recall"] = pr.Recall;
            o["pr_k"] = pr.K;
        }
        if (Mmd2 is double m)
        {
            o["mmd2"] = m;
            o["mmd_n"] = MmdN;
        }
        if (Mixture is { } s)
        {
            o["mixture_within_3sigma"] = s.FractionWithin3Sigma;
            o["mixture_modes_covered"] = s.ModesCovered;
            o["mixture_modes"] = s.Modes;
            o["mixture_log_likelihood"] = s.MeanLogLikelihood;
        }
        return o;
    }

    /// <summary>Human-readable lines; every score names the feature space and the sample count.</summary>
    public string ToText()
    {
        var sb = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        string tag = $"[{Features}, n={N} vs {ReferenceN}]";
        sb.AppendLine(c, $"samples: {N}, reference: {Reference} ({ReferenceN}), features: {Features}");
        if (Fid is double f) sb.AppendLine(c, $"fid        {f,12:G6}   {tag}");
        if (Kid is { } k) sb.AppendLine(c, $"kid        {k.Mean,12:G6} ± {k.Std:G3}   [{Features}, n={N} vs {ReferenceN}, {k.Subsets} subsets of {k.SubsetSize}]");
        if (PrecisionRecall is { } pr)
        {
            sb.AppendLine(c, $"precision  {pr.Precision,12:F4}   [{Features}, n={N} vs {ReferenceN}, k={pr.K}]");
            sb.AppendLine(c, $"recall     {pr.Recall,12:F4}   [{Features}, n={N} vs {ReferenceN}, k={pr.K}]");
        }
        if (Mmd2 is double m) sb.AppendLine(c, $"mmd2       {m,12:G6}   [{Features}, n={MmdN} vs {MmdN}, unbiased, RBF ×5 bandwidths]");
        if (Mixture is { } s)
        {
            sb.AppendLine(c, $"within 3σ  {s.FractionWithin3Sigma,12:F4}   [mixture, n={s.Samples}]");
            sb.AppendLine(c, $"modes      {s.ModesCovered,8}/{s.Modes,-3}   [mixture, n={s.Samples}]");
            sb.AppendLine(c, $"log-lik    {s.MeanLogLikelihood,12:F4}   [mixture, n={s.Samples}, mean log p(x) under the true mixture]");
        }
        return sb.ToString();
    }
}

public static class Evaluation
{
    /// <summary>
    /// Computes the requested scores of <paramref name="sampleFeatures"/> ([N, F]) against the reference.
    /// Mixture scores are added when the reference knows its mixture and <paramref name="rawSamples"/>
    /// (the samples themselves) have its dimension.
    /// </summary>
    public static EvalResult Run(string features, Tensor sampleFeatures, ReferenceSet reference, EvalOptions options, Tensor? rawSamples = null)
    {
        foreach (var m in options.Metrics)
            if (!EvalOptions.MetricNames.Contains(m)) throw new UserError($"--metrics: unknown metric '{m}'; expected any of {string.Join(",", EvalOptions.MetricNames)}");
        if (sampleFeatures.shape[1] != reference.Statistics.Dim)
            throw new UserError($"the samples' {features} features have dimension {sampleFeatures.shape[1]}, the reference's {reference.Statistics.Dim}");
        var result = new EvalResult { Features = features, N = sampleFeatures.shape[0], Reference = reference.Source, ReferenceN = reference.Count };
        bool needRows = options.Metrics.Any(m => m is "kid" or "pr" or "mmd");
        if (needRows && reference.Rows is null)
            throw new UserError($"{reference.Source}: holds only mu and sigma; KID, precision/recall and MMD need the reference's features (save them with diffusion eval --save-reference) — or use --metrics fid");
        using var gen = new Generator((ulong)options.Seed);
        if (options.Metrics.Contains("fid"))
        {
            using var s = FeatureStatistics.FromFeatures(sampleFeatures);
            result.Fid = FrechetDistance.Compute(s, reference.Statistics);
        }
        if (options.Metrics.Contains("kid"))
            result.Kid = Kid.Compute(sampleFeatures, reference.Rows!, gen, options.KidSubsets, options.KidSubsetSize);
        if (options.Metrics.Contains("pr"))
            result.PrecisionRecall = PrecisionRecall.Compute(reference.Rows!, sampleFeatures, options.K);
        if (options.Metrics.Contains("mmd"))
        {
            using var scope = NewDisposeScope();
            long n = Math.Min(options.MmdMax, Math.Min(sampleFeatures.shape[0], reference.Rows!.shape[0]));
            var a = sampleFeatures.index_select(0, randperm(sampleFeatures.shape[0], generator: gen).narrow(0, 0, n));
            var b = reference.Rows.index_select(0, randperm(reference.Rows.shape[0], generator: gen).narrow(0, 0, n));
            result.Mmd2 = Mmd.Unbiased(a, b).item<double>();
            result.MmdN = n;
        }
        if (reference.Mixture is { } mix && rawSamples is not null && rawSamples.dim() == 2 && rawSamples.shape[1] == mix.Dim)
            result.Mixture = MixtureMetrics.Score(mix, rawSamples);
        return result;
    }
}
