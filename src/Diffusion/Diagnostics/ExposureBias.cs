using System.Text.Json.Nodes;
using Diffusion.IO;
using Diffusion.Sampling;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Diagnostics;

/// <summary>
/// Exposure bias (METHODS.md §1). Two measurements per model:
/// <list type="number">
/// <item>The ε-norm gap per t: mean ‖ε̂(x̂_t, t)‖²/D along generated chains (x̂_t: the model's own
/// reverse chain from x_T ~ N(0, I)) minus mean ‖ε̂(x_t, t)‖²/D on forward samples x_t of held-out data,
/// at every step the chain visits. Exposure bias shows as a positive gap; for the exact model the chain's
/// marginals are the forward marginals, so the gap is 0 in expectation (up to the sampler's
/// discretisation).</item>
/// <item>Reconstruction: held-out x0 noised to x_t for t ∈ {0.01T, 0.1T, 0.6T, T−1}, run back to 0 with
/// the stochastic (DDPM) and the deterministic (DDIM, η = 0) chain at the same density of steps as the
/// generation chain, mean |x̂0 − x0| per coordinate.</item>
/// </list>
/// </summary>
public static class ExposureBias
{
    public sealed record GapRow(int T, Estimate Chain, Estimate Forward)
    {
        public double Gap => Chain.Mean - Forward.Mean;
        public double GapSe => Math.Sqrt(Chain.Se * Chain.Se + Forward.Se * Forward.Se);
    }

    public sealed record ReconstructionRow(int Start, string Chain, int Steps, Estimate MeanAbsError);

    public sealed record Result(string Label, string HeldOut, IReadOnlyList<GapRow> Gap, IReadOnlyList<ReconstructionRow> Reconstruction);

    /// <summary>Start times of the reconstructions: 0.01T, 0.1T, 0.6T (at least 1) and T − 1.</summary>
    public static int[] ReconstructionStarts(int T) =>
        new[] { 0.01, 0.1, 0.6 }.Select(f => Math.Max(1, (int)Math.Round(f * T))).Append(T - 1).Distinct().Order().ToArray();

    public static Result Run(DiagnosticModel m, DiagnosticSettings s)
    {
        using var gen = new Generator((ulong)s.Seed);

        // 1. The model's own chain, recording ‖ε̂‖²/D at every visited step.
        using var recorder = DiagnosticReport.RecordChain(m, s, gen);

        // 2. The same steps on forward samples of held-out data.
        using var x0 = m.HeldOut(s.N, gen);
        var gap = new List<GapRow>();
        foreach (var (t, chainNorms) in recorder.EpsNorms)
        {
            using var scope = NewDisposeScope();
            var (_, _, epsHat, _) = DiagnosticReport.Forward(m, x0, t, gen, s.BatchSize);
            var fwd = DiagnosticReport.PerExample(epsHat.Pow(2L));
            gap.Add(new GapRow(t, Estimate.Of(chainNorms), Estimate.Of(fwd)));
        }

        // 3. Reconstructions from x_t back to 0.
        int T = m.Schedule.T;
        var rec = new List<ReconstructionRow>();
        foreach (int start in ReconstructionStarts(T))
        {
            int count = Math.Clamp((int)Math.Round(s.Steps * (start + 1.0) / T), 2, start + 1);
            var steps = Enumerable.Range(0, count).Select(i => (int)Math.Round(i * (double)start / (count - 1))).Distinct().ToArray();
            foreach (var kind in new[] { "ddpm", "ddim" })
            {
                using var scope = NewDisposeScope();
                ISampler chain = kind == "ddpm"
                    ? new DdpmSampler(m.Schedule, steps, fixedLarge: false, clipDenoised: m.IsImage)
                    : new DdimSampler(m.Schedule, steps, eta: 0.0, clipDenoised: m.IsImage);
                var xt = Schedules.ForwardDraw.At(m.Schedule, x0, start, gen).Xt;
                var back = SampleRun.Draw(chain, m.Denoiser, xt, gen, s.BatchSize);
                rec.Add(new ReconstructionRow(start, kind, steps.Length, Estimate.Of(DiagnosticReport.PerExample((back - x0).abs()))));
            }
        }
        return new Result(m.Label, m.HeldOutSource, gap, rec);
    }

    public static void Write(string dir, IReadOnlyList<Result> results, DiagnosticSettings s)
    {
        Directory.CreateDirectory(dir);
        DiagnosticReport.WriteCsv(Path.Combine(dir, "exposure-bias.csv"),
            ["label", "t", "chain_eps_norm2_per_dim", "chain_se", "forward_eps_norm2_per_dim", "forward_se", "gap", "gap_se"],
            results.SelectMany(r => r.Gap.Select(g => new object[] { r.Label, g.T, g.Chain.Mean, g.Chain.Se, g.Forward.Mean, g.Forward.Se, g.Gap, g.GapSe })));
        DiagnosticReport.WriteCsv(Path.Combine(dir, "exposure-bias-reconstruction.csv"),
            ["label", "start_t", "chain", "steps", "mean_abs_error", "se"],
            results.SelectMany(r => r.Reconstruction.Select(c => new object[] { r.Label, c.Start, c.Chain, c.Steps, c.MeanAbsError.Mean, c.MeanAbsError.Se })));
        var json = DiagnosticReport.Document("exposure-bias", "gap(t) = mean ||eps_hat(chain x_t, t)||^2/D - mean ||eps_hat(forward x_t, t)||^2/D; reconstruction: mean |x0_hat - x0| after noising held-out x0 to x_t and running the chain back", DiagnosticReport.Json(s), results.Select(r => new JsonObject
        {
            ["label"] = r.Label,
            ["held_out"] = r.HeldOut,
            ["t"] = DiagnosticReport.Array(r.Gap.Select(g => g.T)),
            ["gap"] = DiagnosticReport.Array(r.Gap.Select(g => g.Gap)),
            ["gap_se"] = DiagnosticReport.Array(r.Gap.Select(g => g.GapSe)),
            ["mean_gap"] = DiagnosticReport.Number(r.Gap.Average(g => g.Gap)),
            ["reconstruction"] = new JsonArray(r.Reconstruction.Select(c => (JsonNode)new JsonObject
            {
                ["start_t"] = c.Start, ["chain"] = c.Chain, ["steps"] = c.Steps, ["mean_abs_error"] = DiagnosticReport.Number(c.MeanAbsError.Mean), ["se"] = DiagnosticReport.Number(c.MeanAbsError.Se),
            }).ToArray()),
        }));
        DiagnosticReport.WriteJson(Path.Combine(dir, "exposure-bias.json"), json);
        DiagnosticReport.WritePlot(Path.Combine(dir, "exposure-bias.png"),
        [
            new LinePanel("ε-norm gap: generated chain − forward samples", "t", "Δ mean ‖ε̂‖²/D",
                results.Select(r => new Curve(r.Label, r.Gap.Select(g => (double)g.T).ToArray(), r.Gap.Select(g => g.Gap).ToArray(), r.Gap.Select(g => 2 * g.GapSe).ToArray())).ToList(),
                ReferenceY: [0.0]),
            new LinePanel("reconstruction from x_t", "start t", "mean |x̂0 − x0|",
                results.SelectMany(r => new[] { "ddpm", "ddim" }.Select(k => new Curve($"{r.Label} ({k})",
                    r.Reconstruction.Where(c => c.Chain == k).Select(c => (double)c.Start).ToArray(),
                    r.Reconstruction.Where(c => c.Chain == k).Select(c => c.MeanAbsError.Mean).ToArray()))).ToList(), LogX: true),
        ]);
    }
}
