using System.Text.Json.Nodes;
using Diffusion.IO;
using Diffusion.Metrics;
using static TorchSharp.torch;

namespace Diffusion.Diagnostics;

/// <summary>
/// The Gaussian bottleneck with few backward steps (METHODS.md §5), for vector data from a known
/// Gaussian mixture: the mixture scores — fraction of samples within 3σ of a mode, modes covered, mean
/// log-likelihood under the true mixture — as the number of backward steps falls (default 1000, 100,
/// 20, 10, 5; those above T are left out), for the same model and the same x_T.
/// </summary>
public static class MixtureSteps
{
    public static readonly int[] DefaultSteps = [1000, 100, 20, 10, 5];

    public sealed record Row(int Steps, MixtureScores Scores);

    public sealed record Result(string Label, IReadOnlyList<Row> Rows);

    public static Result Run(DiagnosticModel m, DiagnosticSettings s, IReadOnlyList<int>? steps = null)
    {
        var mixture = m.Mixture ?? throw new UserError($"mixture-steps: {m.Label}: the data is not a known Gaussian mixture (expected a model of toy:gmm-grid or gmm:SPEC.json data, or --model gmm:SPEC.json)");
        if (m.IsImage) throw new UserError($"mixture-steps: {m.Label}: expected vector data");
        var counts = (steps ?? DefaultSteps).Where(k => k <= m.Schedule.T).Distinct().OrderDescending().ToArray();
        if (counts.Length == 0) throw new UserError($"mixture-steps: no step count ≤ T = {m.Schedule.T}");
        using var gen = new Generator((ulong)s.Seed);
        using var xT = randn([s.N, mixture.Dim], generator: gen);
        var rows = new List<Row>();
        foreach (int k in counts)
        {
            using var scope = NewDisposeScope();
            using var g = new Generator((ulong)s.Seed + 1);
            var x = Sampling.SampleRun.Draw(DiagnosticReport.Chain(m, s, k), m.Denoiser, xT, g, s.BatchSize);
            rows.Add(new Row(k, MixtureMetrics.Score(mixture, x)));
        }
        return new Result(m.Label, rows);
    }

    public static void Write(string dir, IReadOnlyList<Result> results, DiagnosticSettings s)
    {
        Directory.CreateDirectory(dir);
        DiagnosticReport.WriteCsv(Path.Combine(dir, "mixture-steps.csv"), ["label", "steps", "within_3sigma", "modes_covered", "modes", "log_likelihood"],
            results.SelectMany(r => r.Rows.Select(w => new object[] { r.Label, w.Steps, w.Scores.FractionWithin3Sigma, w.Scores.ModesCovered, w.Scores.Modes, w.Scores.MeanLogLikelihood })));
        var json = DiagnosticReport.Document("mixture-steps", "mixture scores of N samples drawn with each number of backward steps (uniform respacing) from the same x_T", DiagnosticReport.Json(s), results.Select(r => new JsonObject
        {
            ["label"] = r.Label,
            ["steps"] = DiagnosticReport.Array(r.Rows.Select(w => w.Steps)),
            ["within_3sigma"] = DiagnosticReport.Array(r.Rows.Select(w => w.Scores.FractionWithin3Sigma)),
            ["modes_covered"] = DiagnosticReport.Array(r.Rows.Select(w => w.Scores.ModesCovered)),
            ["modes"] = r.Rows[0].Scores.Modes,
            ["log_likelihood"] = DiagnosticReport.Array(r.Rows.Select(w => w.Scores.MeanLogLikelihood)),
        }));
        DiagnosticReport.WriteJson(Path.Combine(dir, "mixture-steps.json"), json);
        double[] X(Result r) => r.Rows.Select(w => (double)w.Steps).ToArray();
        DiagnosticReport.WritePlot(Path.Combine(dir, "mixture-steps.png"),
        [
            new LinePanel("samples within 3σ of a mode", "backward steps", "fraction",
                results.Select(r => new Curve(r.Label, X(r), r.Rows.Select(w => w.Scores.FractionWithin3Sigma).ToArray())).ToList(), LogX: true),
            new LinePanel("modes covered", "backward steps", $"modes (of {results[0].Rows[0].Scores.Modes})",
                results.Select(r => new Curve(r.Label, X(r), r.Rows.Select(w => (double)w.Scores.ModesCovered).ToArray())).ToList(), LogX: true),
            new LinePanel("log-likelihood under the true mixture", "backward steps", "mean log p(x)",
                results.Select(r => new Curve(r.Label, X(r), r.Rows.Select(w => w.Scores.MeanLogLikelihood).ToArray())).ToList(), LogX: true),
        ]);
    }
}
