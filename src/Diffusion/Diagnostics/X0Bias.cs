using System.Text.Json.Nodes;
using Diffusion.IO;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Diagnostics;

/// <summary>
/// Bias and error of the x0 estimate per t (METHODS.md §2): held-out x0, x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε,
/// e = x̂0(x_t, t) − x0 (unclipped). Reported per t on a grid dense near 0:
/// <c>mean_error</c> = E[e] over examples and coordinates (its standard error beside it);
/// <c>bias_rms</c> = ‖E_n[e]‖/√D, the size of the per-coordinate mean error (it has a floor of about
/// √(mse/N) from sampling alone, given as <c>bias_rms_floor</c>); <c>mse</c> = E‖e‖²/D.
/// For the exact model x̂0 = E[x0 | x_t], so E[e] = 0 and the MSE is the posterior variance
/// (for a single Gaussian N(μ, s²I): s²σ_t²/(ᾱ_t s² + σ_t²) per coordinate).
/// </summary>
public static class X0Bias
{
    public sealed record Row(int T, Estimate MeanError, double BiasRms, double BiasRmsFloor, Estimate Mse);

    public sealed record Result(string Label, string HeldOut, IReadOnlyList<Row> Rows);

    public static Result Run(DiagnosticModel m, DiagnosticSettings s, int[]? times = null)
    {
        using var gen = new Generator((ulong)s.Seed);
        times ??= DiagnosticReport.DenseNearZero(m.Schedule.T, s.GridPoints);
        using var x0 = m.HeldOut(s.N, gen);
        long d = x0.numel() / x0.shape[0];
        var rows = new List<Row>();
        foreach (int t in times)
        {
            using var scope = NewDisposeScope();
            var (_, _, _, x0Hat) = DiagnosticReport.Forward(m, x0, t, gen, s.BatchSize);
            var e = (x0Hat - x0).to_type(ScalarType.Float64).reshape(x0.shape[0], -1);
            var meanErr = Estimate.Of(e.mean([1]).data<double>().ToArray());
            var mse = Estimate.Of(e.Pow(2L).mean([1]).data<double>().ToArray());
            double biasRms = e.mean([0]).Pow(2L).mean().sqrt().item<double>();
            rows.Add(new Row(t, meanErr, biasRms, Math.Sqrt(mse.Mean / x0.shape[0]), mse));
        }
        return new Result(m.Label, m.HeldOutSource, rows);
    }

    public static void Write(string dir, IReadOnlyList<Result> results, DiagnosticSettings s)
    {
        Directory.CreateDirectory(dir);
        DiagnosticReport.WriteCsv(Path.Combine(dir, "x0-bias.csv"),
            ["label", "t", "mean_error", "mean_error_se", "bias_rms", "bias_rms_floor", "mse", "mse_se"],
            results.SelectMany(r => r.Rows.Select(w => new object[] { r.Label, w.T, w.MeanError.Mean, w.MeanError.Se, w.BiasRms, w.BiasRmsFloor, w.Mse.Mean, w.Mse.Se })));
        var json = DiagnosticReport.Document("x0-bias", "e = x0_hat(x_t, t) - x0 on held-out data; mean_error = E[e]; bias_rms = ||E_n[e]||/sqrt(D); mse = E||e||^2/D", DiagnosticReport.Json(s), results.Select(r => new JsonObject
        {
            ["label"] = r.Label,
            ["held_out"] = r.HeldOut,
            ["t"] = DiagnosticReport.Array(r.Rows.Select(w => w.T)),
            ["mean_error"] = DiagnosticReport.Array(r.Rows.Select(w => w.MeanError.Mean)),
            ["bias_rms"] = DiagnosticReport.Array(r.Rows.Select(w => w.BiasRms)),
            ["mse"] = DiagnosticReport.Array(r.Rows.Select(w => w.Mse.Mean)),
        }));
        DiagnosticReport.WriteJson(Path.Combine(dir, "x0-bias.json"), json);
        double[] X(Result r) => r.Rows.Select(w => (double)(w.T + 1)).ToArray();
        DiagnosticReport.WritePlot(Path.Combine(dir, "x0-bias.png"),
        [
            new LinePanel("x0 error E‖x̂0 − x0‖²/D", "t + 1", "MSE per coordinate",
                results.Select(r => new Curve(r.Label, X(r), r.Rows.Select(w => w.Mse.Mean).ToArray())).ToList(), LogX: true, LogY: true),
            new LinePanel("x0 bias E[x̂0 − x0]", "t + 1", "mean error (± 2 s.e.)",
                results.Select(r => new Curve(r.Label, X(r), r.Rows.Select(w => w.MeanError.Mean).ToArray(), r.Rows.Select(w => 2 * w.MeanError.Se).ToArray())).ToList(),
                LogX: true, ReferenceY: [0.0]),
            new LinePanel("x0 bias size ‖E_n[x̂0 − x0]‖/√D", "t + 1", "RMS of per-coordinate mean error",
                results.Select(r => new Curve(r.Label, X(r), r.Rows.Select(w => w.BiasRms).ToArray()))
                    // Each model's own floor (it depends on its MSE), dashed in its colour.
                    .Concat(results.Select((r, i) => new Curve($"{r.Label}: sampling floor √(mse/N)", X(r), r.Rows.Select(w => w.BiasRmsFloor).ToArray(), Colour: i, Dashed: true))).ToList(),
                LogX: true, LogY: true),
        ]);
    }
}
