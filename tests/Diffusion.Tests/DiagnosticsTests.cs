using System.Text.Json.Nodes;
using Diffusion.Config;
using Diffusion.Data;
using Diffusion.Diagnostics;
using Diffusion.Models;
using Diffusion.Sampling;
using Diffusion.Schedules;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>Each diagnostic on models whose answer is known: the exact mixture denoiser and constructed denoisers.</summary>
public class DiagnosticsTests
{
    private static readonly NoiseSchedule Linear = NoiseSchedule.Linear(1000);

    private static DiagnosticModel Exact(GaussianMixture g, string label = "exact") =>
        DiagnosticModel.FromDenoiser(label, new GaussianMixtureDenoiser(g, Linear), Linear, g);

    /// <summary>ε̂ = scale·ε*: a deliberately wrong model, to show the diagnostics can tell.</summary>
    private sealed class Scaled(IDenoiser inner, double scale) : IDenoiser
    {
        public Prediction Prediction => Prediction.Epsilon;
        public Tensor Predict(Tensor x, TimeStep step) { using var e = inner.Predict(x, step); return e * scale; }
    }

    /// <summary>ε̂(x, t) = a(t)·u for a fixed vector u: K(t) = |a(t) − a(t−Δ)|·‖u‖/Δ exactly.</summary>
    private sealed class TimeOnly(Func<double, double> a, double[] u) : IDenoiser
    {
        public Prediction Prediction => Prediction.Epsilon;
        public Tensor Predict(Tensor x, TimeStep step)
        {
            using var at = step.T.to_type(ScalarType.Float64).cpu();
            var coef = tensor(at.data<double>().Select(a).ToArray(), dtype: x.dtype).unsqueeze(1);
            using var uu = tensor(u, dtype: x.dtype).unsqueeze(0);
            return coef * uu;
        }
    }

    [Fact]
    public void Exact_model_has_no_exposure_gap_and_a_wrong_one_has()
    {
        var g = TestUtil.SmallMixture();
        var s = new DiagnosticSettings { N = 600, Steps = 100, Seed = 3 };
        using var exact = Exact(g);
        var r = ExposureBias.Run(exact, s);
        Assert.Equal(100, r.Gap.Count);
        // Per t the gap is within sampling noise; averaged over t it is ≈ 0 relative to the norms themselves.
        int outside = r.Gap.Count(x => Math.Abs(x.Gap) > 3 * x.GapSe);
        Assert.True(outside <= 5, $"{outside} of 100 steps have |gap| > 3 s.e.");
        double meanGap = r.Gap.Average(x => x.Gap), meanNorm = r.Gap.Average(x => x.Forward.Mean);
        Assert.True(Math.Abs(meanGap) < 0.02 * meanNorm, $"mean gap {meanGap:G3} vs mean ‖ε̂‖²/D {meanNorm:G3}");
        // Reconstruction from x_t: nearly exact from t = 10, more error the more noise.
        var ddim = r.Reconstruction.Where(c => c.Chain == "ddim").OrderBy(c => c.Start).ToList();
        Assert.Equal([10, 100, 600, 999], ddim.Select(c => c.Start));
        Assert.True(ddim[0].MeanAbsError.Mean < 0.1 && ddim[0].MeanAbsError.Mean < ddim[3].MeanAbsError.Mean / 5,
            string.Join(", ", ddim.Select(c => $"{c.Start}: {c.MeanAbsError.Mean:F3}")));

        // ε̂ 10% too large: the chain over-shrinks, its ε-norms differ from the forward ones at many steps.
        using var wrong = DiagnosticModel.FromDenoiser("scaled", new Scaled(new GaussianMixtureDenoiser(g, Linear), 1.1), Linear, g);
        var w = ExposureBias.Run(wrong, s);
        int wrongOutside = w.Gap.Count(x => Math.Abs(x.Gap) > 3 * x.GapSe);
        Assert.True(wrongOutside > 25, $"the scaled model has only {wrongOutside} of 100 steps outside 3 s.e.");
    }

    [Fact]
    public void Exact_model_x0_error_is_unbiased_with_the_posterior_variance()
    {
        // One Gaussian N(μ, s²I): x̂0 = E[x0|x_t] has error mean 0 and variance s²σ²/(ᾱs² + σ²) per coordinate.
        double sd = 0.7;
        var g = new GaussianMixture([1.0], [[0.5, -0.3, 0.2]], [sd]);
        using var m = Exact(g);
        var times = new[] { 0, 5, 50, 300, 999 };
        var r = X0Bias.Run(m, new DiagnosticSettings { N = 4000, Seed = 1 }, times);
        foreach (var row in r.Rows)
        {
            double ab = Linear.AlphasCumprod[row.T], s2 = sd * sd, v = 1 - ab;
            double expected = s2 * v / (ab * s2 + v);
            Assert.True(Math.Abs(row.Mse.Mean - expected) < 4 * row.Mse.Se + 1e-6, $"t={row.T}: mse {row.Mse.Mean:G4} ± {row.Mse.Se:G2}, posterior variance {expected:G4}");
            Assert.True(Math.Abs(row.MeanError.Mean) < 4 * row.MeanError.Se + 1e-6, $"t={row.T}: mean error {row.MeanError.Mean:G3} ± {row.MeanError.Se:G2}");
        }
        // A model of another mixture (mean shifted by 0.3) is biased by about 0.3·ᾱ-weighted amounts, far above the floor,
        // and its MSE exceeds the posterior variance.
        var shifted = new GaussianMixture([1.0], [[0.8, -0.3, 0.2]], [sd]);
        using var wrong = DiagnosticModel.FromDenoiser("shifted", new GaussianMixtureDenoiser(shifted, Linear), Linear, g);
        var wr = X0Bias.Run(wrong, new DiagnosticSettings { N = 4000, Seed = 1 }, [300]).Rows[0];
        Assert.True(wr.BiasRms > 10 * wr.BiasRmsFloor, $"bias {wr.BiasRms:G3}, floor {wr.BiasRmsFloor:G3}");
        double ab300 = Linear.AlphasCumprod[300], post = sd * sd * (1 - ab300) / (ab300 * sd * sd + 1 - ab300);
        Assert.True(wr.Mse.Mean > post + 3 * wr.Mse.Se, $"mse {wr.Mse.Mean:G4} ± {wr.Mse.Se:G2}, posterior variance {post:G4}");
    }

    [Fact]
    public void Lipschitz_probe_gives_zero_for_a_constant_model_and_the_slope_for_a_linear_one()
    {
        var g = TestUtil.SmallMixture();
        double[] u = [3.0, 4.0];   // ‖u‖ = 5
        var s = new DiagnosticSettings { N = 64, GridPoints = 12 };
        using var constant = DiagnosticModel.FromDenoiser("constant", new TimeOnly(_ => 0.7, u), Linear, g);
        var c = LipschitzProbe.Run(constant, s);
        Assert.All(c.Rows, row => Assert.Equal(0.0, row.K.Mean));
        Assert.Equal(1, c.Rows[0].T);   // the grid is dense near 0 and starts at Δ
        using var linear = DiagnosticModel.FromDenoiser("linear", new TimeOnly(t => t / 1000.0, u), Linear, g);
        foreach (var row in LipschitzProbe.Run(linear, s).Rows) Assert.Equal(5.0 / 1000, row.K.Mean, 6);   // float32 model outputs
        // Δ = 4 on a quadratic a(t) = (t/1000)²: K(t) = (t² − (t−4)²)/10⁶·5/4.
        using var quad = DiagnosticModel.FromDenoiser("quadratic", new TimeOnly(t => t * t / 1e6, u), Linear, g);
        foreach (var row in LipschitzProbe.Run(quad, s, delta: 4).Rows)
            Assert.Equal((row.T * (double)row.T - (row.T - 4.0) * (row.T - 4.0)) / 1e6 * 5 / 4, row.K.Mean, 6);

        // The exact model's ε*(x, t) ∝ σ_t near t = 0 with σ_t ∝ √t: its K(t) blows up as t → 0 (METHODS §3).
        using var exact = Exact(g);
        var e = LipschitzProbe.Run(exact, new DiagnosticSettings { N = 500 }, times: [1, 100]);
        Assert.True(e.Rows[0].K.Mean > 3 * e.Rows[1].K.Mean, $"K(1) = {e.Rows[0].K.Mean:G3}, K(100) = {e.Rows[1].K.Mean:G3}");
    }

    [Fact]
    public void Exact_chain_stays_within_the_mmd_null_range_and_a_wrong_one_leaves_it()
    {
        var g = TestUtil.SmallMixture();
        var s = new DiagnosticSettings { N = 300, Steps = 100, GridPoints = 10, Seed = 2 };
        using var exact = Exact(g);
        var r = ErrorPropagation.Run(exact, s, permutations: 50);
        Assert.True(r.Rows.Count >= 8, $"{r.Rows.Count} grid points");
        int rejected = r.Rows.Count(x => x.PValue < 0.05);
        Assert.True(rejected <= 1, $"exact chain rejected at {rejected} of {r.Rows.Count} steps: " + string.Join(", ", r.Rows.Select(x => $"t={x.T} p={x.PValue:F2}")));
        Assert.All(r.Rows, x => Assert.True(x.Null95 > 0));

        // The exact model of a shifted mixture: its chain ends at the wrong distribution, far outside the null range near t = 0.
        var shifted = new GaussianMixture(g.Weights, g.Means.Select(mu => new[] { mu[0] + 0.5, mu[1] }).ToArray(), g.Stds);
        using var wrong = DiagnosticModel.FromDenoiser("shifted", new GaussianMixtureDenoiser(shifted, Linear), Linear, g);
        var w = ErrorPropagation.Run(wrong, s, permutations: 50);
        var early = w.Rows.Where(x => x.T < 100).ToList();
        Assert.True(early.All(x => x.Mmd2 > 3 * x.Null95 && x.PValue < 0.05), string.Join(", ", early.Select(x => $"t={x.T} mmd²={x.Mmd2:G3} null95={x.Null95:G3}")));
    }

    [Fact]
    public void Permutation_null_block_sums_give_the_direct_unbiased_mmd()
    {
        using var gen = new Generator(5);
        using var x = randn([60, 3], dtype: ScalarType.Float64, generator: gen);
        using var y = randn([60, 3], dtype: ScalarType.Float64, generator: gen) + 0.3;
        var (mmd, _, _) = Diffusion.Metrics.Mmd.PermutationNull(x, y, 10, gen);
        Assert.Equal(Diffusion.Metrics.Mmd.Unbiased(x, y).item<double>(), mmd, 10);
    }

    [Fact]
    public void Mixture_scores_fall_as_backward_steps_fall()
    {
        // A 3×3 grid of narrow Gaussians: with 1000 steps the exact model's samples land on the modes; with 5
        // Gaussian steps they blur between them (the bottleneck SMD addresses).
        var means = new List<double[]>();
        for (int i = -1; i <= 1; i++) for (int j = -1; j <= 1; j++) means.Add([i * 1.0, j * 1.0]);
        var g = new GaussianMixture(Enumerable.Repeat(1.0, 9).ToArray(), means.ToArray(), Enumerable.Repeat(0.05, 9).ToArray());
        using var m = Exact(g);
        var r = MixtureSteps.Run(m, new DiagnosticSettings { N = 500, Seed = 1 }, [1000, 20, 5]);
        Assert.Equal([1000, 20, 5], r.Rows.Select(x => x.Steps));
        var f = r.Rows.Select(x => x.Scores.FractionWithin3Sigma).ToArray();
        Assert.True(f[0] > 0.9, $"1000 steps: {f[0]:F3} within 3σ");
        Assert.True(f[2] < f[0] - 0.2, $"5 steps: {f[2]:F3}, 1000 steps: {f[0]:F3}");
        Assert.Equal(9, r.Rows[0].Scores.ModesCovered);
        Assert.True(r.Rows[2].Scores.MeanLogLikelihood < r.Rows[0].Scores.MeanLogLikelihood);
    }

    /// <summary>The exact denoiser of a mixture over flattened images: a model of [C, H, W] images whose samples are known.</summary>
    private sealed class FlatImages(GaussianMixtureDenoiser inner) : IDenoiser
    {
        public Prediction Prediction => Prediction.Epsilon;
        public Tensor Predict(Tensor x, TimeStep step)
        {
            using var flat = x.reshape(x.shape[0], -1);
            using var e = inner.Predict(flat, step);
            return e.reshape(x.shape);
        }
    }

    [Fact]
    public void Image_mixture_steps_report_what_eval_computes_on_the_same_samples()
    {
        // 1×4×4 images from two narrow modes (every pixel +0.5 or every pixel −0.5) and their exact model; 300 held-out images.
        var g = new GaussianMixture([1.0, 1.0], [Enumerable.Repeat(0.5, 16).ToArray(), Enumerable.Repeat(-0.5, 16).ToArray()], [0.1, 0.1]);
        var dir = TestUtil.TempDir("diag-image-steps");
        var held = Path.Combine(dir, "held.npy");
        using (var gen = new Generator(7))
        using (var x = g.Sample(300, gen))
        using (var img = x.to_type(ScalarType.Float32).reshape(300, 1, 4, 4))
            Npy.Write(held, img);
        long[] shape = [1, 4, 4];
        var s = new DiagnosticSettings { N = 200, Seed = 2 };
        int[] steps = [1000, 2];
        using var m = DiagnosticModel.FromImageDenoiser("exact", new FlatImages(new GaussianMixtureDenoiser(g, Linear)), Linear, shape, $"npy:{held}");
        using var reference = MixtureSteps.ImageReference.For(m, s, "raw");
        Assert.Equal(300, reference.Set.Count);
        var r = MixtureSteps.RunImages(m, s, reference, steps);
        Assert.Equal(steps, r.Rows.Select(w => w.Steps));
        // The bottleneck on images: two Gaussian steps blur the modes together, 1000 steps land on them.
        Assert.True(r.Rows[1].Fid > 5 * r.Rows[0].Fid, $"FID {r.Rows[0].Fid:G4} at 1000 steps, {r.Rows[1].Fid:G4} at 2");

        // The same seed again: the same numbers, bit for bit.
        var again = MixtureSteps.RunImages(m, s, reference, steps);
        Assert.Equal(r.Rows.Select(w => (w.Fid, w.Kid, w.Precision, w.Recall)), again.Rows.Select(w => (w.Fid, w.Kid, w.Precision, w.Recall)));

        // An independent path: x_T drawn with the seed, the chain's noise with seed + 1, through the sampling API; the
        // samples written to .npy and scored by diffusion eval against the held-out file in raw features.
        for (int i = 0; i < steps.Length; i++)
        {
            using var gen = new Generator((ulong)s.Seed);
            using var xT = randn([s.N, .. shape], generator: gen);
            using var chainGen = new Generator((ulong)s.Seed + 1);
            var sampler = Samplers.Create(new SampleConfig { Sampler = "ddpm", Steps = steps[i], Spacing = "uniform" }, Linear, clipDefault: true);
            using var exact = new FlatImages(new GaussianMixtureDenoiser(g, Linear));
            using (var x = SampleRun.Draw(sampler, exact, xT, chainGen, s.BatchSize))
                Npy.Write(Path.Combine(dir, $"s{steps[i]}.npy"), x);
            var e = CliTests.Run("eval", "--samples", Path.Combine(dir, $"s{steps[i]}.npy"), "--reference", $"npy:{held}", "--features", "raw",
                                 "--metrics", "fid,kid,pr", "--seed", s.Seed.ToString(), "--format", "json", "--quiet");
            Assert.True(e.Code == 0, e.Err);
            var j = JsonNode.Parse(e.Out)!.AsObject();
            Assert.Equal(300, (int)j["reference_n"]!);
            Assert.Equal((double)j["fid"]!, r.Rows[i].Fid, 1e-9);
            Assert.Equal((double)j["kid"]!, r.Rows[i].Kid, 1e-12);
            Assert.Equal((double)j["precision"]!, r.Rows[i].Precision);
            Assert.Equal((double)j["recall"]!, r.Rows[i].Recall);
        }

        // The files: one row per step count with eval's names, the plot.
        var outDir = Path.Combine(dir, "out");
        MixtureSteps.WriteImages(outDir, [r], s, reference);
        var csv = File.ReadAllLines(Path.Combine(outDir, "mixture-steps.csv"));
        Assert.Equal("label,steps,fid,kid,kid_std,precision,recall,features,n,reference_n", csv[0]);
        Assert.StartsWith("exact,2,", csv[2]);
        Assert.EndsWith(",raw,200,300", csv[2]);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "mixture-steps.json")))!;
        Assert.Equal("raw", (string)json["settings"]!["features"]!);
        Assert.Equal(r.Rows[1].Fid, (double)json["models"]![0]!["fid"]![1]!);
        Assert.True(new FileInfo(Path.Combine(outDir, "mixture-steps.png")).Length > 5000);

        // A vector model is not scored this way, nor is an image model against another reference.
        var vg = TestUtil.SmallMixture();
        using var vector = Exact(vg);
        Assert.Contains("expected an image model", Assert.Throws<UserError>(() => MixtureSteps.RunImages(vector, s, reference, steps)).Message);
        Assert.Contains("RunImages", Assert.Throws<UserError>(() => MixtureSteps.Run(m, s, steps)).Message);
        using var other = DiagnosticModel.FromImageDenoiser("other", new FlatImages(new GaussianMixtureDenoiser(g, Linear)), Linear, shape, $"npy:{held}?labels=none");
        Assert.Contains("give all models the same --data", Assert.Throws<UserError>(() => MixtureSteps.RunImages(other, s, reference, steps)).Message);
    }
}
