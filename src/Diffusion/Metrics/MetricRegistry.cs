using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Diffusion.Metrics;

/// <summary>What a metric is computed from: the samples' features [N, F], the reference, the options and a seeded generator.</summary>
public sealed record MetricInput(Tensor SampleFeatures, ReferenceSet Reference, EvalOptions Options, Generator Gen, string Features)
{
    /// <summary>The samples' statistics when they are known already (merged partial evaluations); else computed from the rows.</summary>
    public FeatureStatistics? SampleStatistics { get; init; }
}

/// <summary>One metric's result: its entries of the flat JSON object and its lines of text (each naming the features and counts).</summary>
public sealed record MetricScore(string Metric, JsonObject Json, IReadOnlyList<string> Text);

/// <summary>
/// A metric as <c>diffusion eval --metrics</c> names it, declared once in the metric's own file: its name, one line of
/// help, whether it needs the reference's feature rows (not only μ and Σ), and its computation.
/// </summary>
public sealed record MetricKind(string Name, string Help, bool NeedsReferenceRows, Func<MetricInput, MetricScore> Compute);

/// <summary>The registry of metrics: adding one means declaring its <see cref="MetricKind"/> in its file and listing it here.</summary>
public static class MetricRegistry
{
    public static readonly IReadOnlyList<MetricKind> All = [FrechetDistance.Kind, Kid.Kind, PrecisionRecall.Kind, Mmd.Kind];

    public static string[] Names => All.Select(m => m.Name).ToArray();

    /// <summary>The metric called <paramref name="name"/>; an unknown name is a <see cref="UserError"/> listing the known ones.</summary>
    public static MetricKind Get(string name) =>
        All.FirstOrDefault(m => m.Name == name) ?? throw new UserError($"--metrics: unknown metric '{name}'; expected any of {string.Join(",", Names)}");
}
