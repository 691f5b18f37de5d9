using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Diffusion.Metrics;

/// <summary>Which scores to compute and how.</summary>
public sealed record EvalOptions
{
    /// <summary>The metrics of the registry (<see cref="MetricRegistry"/>), in order.</summary>
    public static string[] MetricNames => MetricRegistry.Names;

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
    /// <summary>The metrics' results, in the order they were asked for.</summary>
    public List<MetricScore> Scores { get; } = [];
    public MixtureScores? Mixture { get; set; }
    /// <summary>Per-class scores of a class-conditional model's samples (eval --labels).</summary>
    public ClassScores? Classes { get; set; }

    /// <summary>The JSON value <paramref name="key"/> of a metric's result (e.g. "fid", "kid", "precision"), or null.</summary>
    public double? Value(string key) => Scores.Select(s => s.Json[key]).FirstOrDefault(v => v is not null)?.GetValue<double>();

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
        foreach (var score in Scores)
            foreach (var (k, v) in score.Json) o[k] = v?.DeepClone();
        if (Mixture is { } s)
        {
            o["mixture_within_3sigma"] = s.FractionWithin3Sigma;
            o["mixture_modes_covered"] = s.ModesCovered;
            o["mixture_modes"] = s.Modes;
            o["mixture_log_likelihood"] = s.MeanLogLikelihood;
        }
        Classes?.AddTo(o);
        return o;
    }

    /// <summary>Human-readable lines; every score names the feature space and the sample count.</summary>
    public string ToText()
    {
        var sb = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        string tag = $"[{Features}, n={N} vs {ReferenceN}]";
        sb.AppendLine(c, $"samples: {N}, reference: {Reference} ({ReferenceN}), features: {Features}");
        foreach (var line in Scores.SelectMany(x => x.Text)) sb.AppendLine(line);
        if (Mixture is { } s)
        {
            sb.AppendLine(c, $"within 3σ  {s.FractionWithin3Sigma,12:F4}   [mixture, n={s.Samples}]");
            sb.AppendLine(c, $"modes      {s.ModesCovered,8}/{s.Modes,-3}   [mixture, n={s.Samples}]");
            sb.AppendLine(c, $"log-lik    {s.MeanLogLikelihood,12:F4}   [mixture, n={s.Samples}, mean log p(x) under the true mixture]");
        }
        if (Classes is not null) sb.Append(Classes.ToText(Features));
        return sb.ToString();
    }
}

public static class Evaluation
{
    /// <summary>
    /// Computes the requested scores of <paramref name="sampleFeatures"/> ([N, F]) against the reference.
    /// Mixture scores are added when the reference knows its mixture and <paramref name="rawSamples"/>
    /// (the samples themselves) have its dimension. <paramref name="sampleStatistics"/>, when given (merged partial
    /// evaluations), is the samples' mean and covariance for FID instead of one computed from the rows.
    /// </summary>
    public static EvalResult Run(string features, Tensor sampleFeatures, ReferenceSet reference, EvalOptions options, Tensor? rawSamples = null,
                                 FeatureStatistics? sampleStatistics = null)
    {
        var kinds = options.Metrics.Select(MetricRegistry.Get).ToList();
        if (sampleFeatures.shape[1] != reference.Statistics.Dim)
            throw new UserError($"the samples' {features} features have dimension {sampleFeatures.shape[1]}, the reference's {reference.Statistics.Dim}");
        var result = new EvalResult { Features = features, N = sampleFeatures.shape[0], Reference = reference.Source, ReferenceN = reference.Count };
        if (reference.Rows is null && kinds.FirstOrDefault(k => k.NeedsReferenceRows) is { } needs)
            throw new UserError($"{reference.Source}: holds only mu and sigma; {string.Join(", ", kinds.Where(k => k.NeedsReferenceRows).Select(k => k.Name))} need the reference's features (save them with diffusion eval --save-reference) — or use --metrics fid");
        using var gen = new Generator((ulong)options.Seed);
        var input = new MetricInput(sampleFeatures, reference, options, gen, features) { SampleStatistics = sampleStatistics };
        foreach (var kind in MetricRegistry.All.Where(kinds.Contains)) result.Scores.Add(kind.Compute(input));
        if (reference.Mixture is { } mix && rawSamples is not null && rawSamples.dim() == 2 && rawSamples.shape[1] == mix.Dim)
            result.Mixture = MixtureMetrics.Score(mix, rawSamples);
        return result;
    }
}
