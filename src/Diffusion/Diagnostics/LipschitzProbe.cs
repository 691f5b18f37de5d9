using System.Text.Json.Nodes;
using Diffusion.IO;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Diagnostics;

/// <summary>
/// The Lipschitz probe in t (METHODS.md §3): K(t) = E_x ‖ε̂(x_t, t) − ε̂(x_t, t − Δ)‖ / Δ with the same
/// x_t (built from held-out x0 at the true ᾱ_t) for both calls, on a grid of t dense near 0 (t ≥ Δ).
/// The denoiser is called as samplers call it, so a model trained with E-TSDM answers with its shared
/// time condition. A model constant in t has K = 0; one with ε̂ = c·t·g(x) has K = c·E‖g(x_t)‖.
/// </summary>
public static class LipschitzProbe
{
    public sealed record Row(int T, Estimate K);

    public sealed record Result(string Label, string HeldOut, double Delta, IReadOnlyList<Row> Rows);

    public static Result Run(DiagnosticModel m, DiagnosticSettings s, double delta = 1.0, int[]? times = null)
    {
        if (!(delta > 0)) throw new UserError($"--delta must be positive, got {delta}");
        using var gen = new Generator((ulong)s.Seed);
        times ??= DiagnosticReport.DenseNearZero(m.Schedule.T, s.GridPoints, min: (int)Math.Ceiling(delta));
        using var x0 = m.HeldOut(s.N, gen);
        var vp = new Schedules.ContinuousVp(m.Schedule);
        var rows = new List<Row>();
        foreach (int t in times)
        {
            using var scope = NewDisposeScope();
            var (xt, _, epsT, _) = DiagnosticReport.Forward(m, x0, t, gen, s.BatchSize);
            var (epsPrev, _) = DiagnosticReport.Predict(m.Denoiser, xt, xb => vp.StepAtModelTime(t - delta, xb), s.BatchSize);
            var k = (epsT - epsPrev).reshape(xt.shape[0], -1).to_type(ScalarType.Float64).norm(1).Div(delta);
            rows.Add(new Row(t, Estimate.Of(k.data<double>().ToArray())));
        }
        return new Result(m.Label, m.HeldOutSource, delta, rows);
    }

    public static void Write(string dir, IReadOnlyList<Result> results, DiagnosticSettings s)
    {
        Directory.CreateDirectory(dir);
        DiagnosticReport.WriteCsv(Path.Combine(dir, "lipschitz.csv"), ["label", "t", "delta", "K", "K_se"],
            results.SelectMany(r => r.Rows.Select(w => new object[] { r.Label, w.T, r.Delta, w.K.Mean, w.K.Se })));
        var json = DiagnosticReport.Document("lipschitz", "K(t) = E ||eps_hat(x_t, t) - eps_hat(x_t, t - delta)|| / delta, same x_t for both calls", DiagnosticReport.Json(s), results.Select(r => new JsonObject
        {
            ["label"] = r.Label,
            ["held_out"] = r.HeldOut,
            ["delta"] = r.Delta,
            ["t"] = DiagnosticReport.Array(r.Rows.Select(w => w.T)),
            ["K"] = DiagnosticReport.Array(r.Rows.Select(w => w.K.Mean)),
            ["K_se"] = DiagnosticReport.Array(r.Rows.Select(w => w.K.Se)),
        }));
        DiagnosticReport.WriteJson(Path.Combine(dir, "lipschitz.json"), json);
        // Δ is named in the plot: in the title when every model was probed with one Δ, else in each curve's label.
        bool oneDelta = results.Select(r => r.Delta).Distinct().Count() <= 1;
        string title = "Lipschitz constant in t: K(t) = E‖ε̂(x_t, t) − ε̂(x_t, t−Δ)‖/Δ" + (oneDelta && results.Count > 0 ? $", Δ = {Steps(results[0].Delta)}" : "");
        DiagnosticReport.WritePlot(Path.Combine(dir, "lipschitz.png"),
        [
            new LinePanel(title, "t", "K(t)",
                results.Select(r => new Curve(oneDelta ? r.Label : $"{r.Label} (Δ = {Steps(r.Delta)})",
                                              r.Rows.Select(w => (double)w.T).ToArray(), r.Rows.Select(w => w.K.Mean).ToArray())).ToList(),
                LogX: true, LogY: true),
        ]);
    }

    private static string Steps(double delta) => delta.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture);
}
