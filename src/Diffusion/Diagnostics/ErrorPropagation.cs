using System.Text.Json.Nodes;
using Diffusion.IO;
using Diffusion.Metrics;
using static TorchSharp.torch;

namespace Diffusion.Diagnostics;

/// <summary>
/// Cumulative error along the reverse chain (METHODS.md §4): run the model's chain from x_T and, at
/// the visited steps nearest a grid dense near 0, compare the N chain states x̂_t with N forward samples
/// x_t ~ q(x_t) of held-out data by the unbiased MMD² with the regulariser's kernel (a sum of five RBF
/// kernels, bandwidth the mean pooled squared distance, multipliers 2^{−2…2}). Beside each value: its
/// null range, the 95th percentile of MMD² over random relabellings of the pooled sample (what MMD² of
/// two samples of one distribution looks like at this N), and the permutation p-value. For the exact
/// model the chain's marginals are the forward marginals, so MMD² stays within the null range.
/// </summary>
public static class ErrorPropagation
{
    public sealed record Row(int T, double Mmd2, double Null95, double PValue);

    public sealed record Result(string Label, string HeldOut, IReadOnlyList<Row> Rows);

    public static Result Run(DiagnosticModel m, DiagnosticSettings s, int permutations = 100)
    {
        using var gen = new Generator((ulong)s.Seed);
        var visited = Schedules.Respacing.Timesteps("uniform", m.Schedule.T, Math.Min(s.Steps, m.Schedule.T));
        var wanted = DiagnosticReport.DenseNearZero(m.Schedule.T, s.GridPoints);
        var grid = new SortedSet<int>(wanted.Select(w => visited.MinBy(v => Math.Abs(v - w))));
        using var recorder = DiagnosticReport.RecordChain(m, s, gen, grid);
        using var x0 = m.HeldOut(s.N, gen);
        var rows = new List<Row>();
        foreach (var (t, chain) in recorder.States)
        {
            using var scope = NewDisposeScope();
            var fwd = Schedules.ForwardDraw.At(m.Schedule, x0, t, gen).Xt;
            var (mmd, q95, p) = Mmd.PermutationNull(chain, fwd, permutations, gen);
            rows.Add(new Row(t, mmd, q95, p));
        }
        return new Result(m.Label, m.HeldOutSource, rows);
    }

    public static void Write(string dir, IReadOnlyList<Result> results, DiagnosticSettings s, int permutations)
    {
        Directory.CreateDirectory(dir);
        DiagnosticReport.WriteCsv(Path.Combine(dir, "error-propagation.csv"), ["label", "t", "mmd2", "null_95", "p_value"],
            results.SelectMany(r => r.Rows.Select(w => new object[] { r.Label, w.T, w.Mmd2, w.Null95, w.PValue })));
        var settings = DiagnosticReport.Json(s);
        settings["permutations"] = permutations;
        var json = DiagnosticReport.Document("error-propagation", "unbiased MMD^2 (5 RBF kernels, bandwidth = mean pooled squared distance x 2^-2..2^2) between N chain states at step t and N forward samples q(x_t); null_95 = 95th percentile over permutations", settings, results.Select(r => new JsonObject
        {
            ["label"] = r.Label,
            ["held_out"] = r.HeldOut,
            ["t"] = DiagnosticReport.Array(r.Rows.Select(w => w.T)),
            ["mmd2"] = DiagnosticReport.Array(r.Rows.Select(w => w.Mmd2)),
            ["null_95"] = DiagnosticReport.Array(r.Rows.Select(w => w.Null95)),
            ["p_value"] = DiagnosticReport.Array(r.Rows.Select(w => w.PValue)),
        }));
        DiagnosticReport.WriteJson(Path.Combine(dir, "error-propagation.json"), json);
        var curves = results.Select(r => new Curve(r.Label, r.Rows.Select(w => (double)(w.T + 1)).ToArray(), r.Rows.Select(w => w.Mmd2).ToArray())).ToList();
        curves.AddRange(results.Select(r => new Curve($"{r.Label}: null 95%", r.Rows.Select(w => (double)(w.T + 1)).ToArray(), r.Rows.Select(w => w.Null95).ToArray())));
        DiagnosticReport.WritePlot(Path.Combine(dir, "error-propagation.png"),
        [
            new LinePanel("chain vs forward marginal: MMD²(x̂_t, x_t)", "t + 1", "unbiased MMD²", curves, LogX: true, ReferenceY: [0.0]),
        ]);
    }
}
