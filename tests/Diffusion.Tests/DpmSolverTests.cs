using TorchSharp;
using Diffusion.Models;
using Diffusion.Sampling;
using Diffusion.Schedules;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>The DPM-Solver family checked on the exact Gaussian-mixture model: order of convergence, DDIM equivalence, evaluation counts and times.</summary>
public class DpmSolverTests
{
    private static readonly NoiseSchedule Linear = NoiseSchedule.Linear(1000);

    /// <summary>Counts calls and records every time it is asked about; forwards to an inner denoiser.</summary>
    private sealed class ProbeDenoiser(IDenoiser inner) : IDenoiser
    {
        public List<double[]> Times { get; } = [];
        public Prediction Prediction => inner.Prediction;

        public Tensor Predict(Tensor x, TimeStep step)
        {
            Times.Add(step.T.to_type(ScalarType.Float64).cpu().data<double>().ToArray());
            return inner.Predict(x, step);
        }
    }

    /// <summary>Runs with one libtorch thread: these tensors are tiny, and threads only add overhead on a busy machine.</summary>
    private static void OneThread(Action body)
    {
        int threads = get_num_threads();
        set_num_threads(1);
        try { body(); }
        finally { set_num_threads(threads); }
    }

    private static double MeanDistance(Tensor a, Tensor b) => (a - b).pow(2).sum(1).sqrt().mean().item<double>();

    /// <summary>Least-squares slope of log(error) against log(1/steps).</summary>
    internal static double Slope(int[] steps, double[] errors)
    {
        var xs = steps.Select(s => -Math.Log(s)).ToArray();
        var ys = errors.Select(e => Math.Log(e)).ToArray();
        double mx = xs.Average(), my = ys.Average();
        return xs.Zip(ys).Sum(p => (p.First - mx) * (p.Second - my)) / xs.Sum(v => (v - mx) * (v - mx));
    }

    [Fact]
    public void Error_falls_with_steps_at_the_order_rate()
    {
        // The mixture's score is smooth (component stds 0.2–0.4, σ ≥ 0.01 along the path) and logSNR spacing makes
        // the steps uniform in λ, so the solvers are in their asymptotic regime from about 30 evaluations
        // (h ≈ 0.3 in λ; docs/results/samplers.md shows the slopes settling over 30–240 steps).
        // Step counts follow each allocation: even counts for singlestep order 2 (no first-order step), counts ≡ 2
        // (mod 3) for singlestep order 3 (it then ends with an order-2 step, whose h³ local error keeps order 3).
        // Tolerances: order 1 in [0.8, 1.3], order 2 in [1.6, 2.6], order 3 in [2.4, 3.8] — wide enough for the
        // pre-asymptotic curvature measured (fitted slopes 1.81–2.09 and 2.57–3.51 over 30–120 steps), narrow enough
        // to tell the orders apart.
        OneThread(() =>
        {
            using var scope = NewDisposeScope();
            var den = new GaussianMixtureDenoiser(TestUtil.SmallMixture(), Linear);
            var xT = randn([200, 2], dtype: ScalarType.Float64, generator: new Generator(3));
            // Reference: an independent RK4 solve (250 λ-steps, 1000 evaluations), checked against a 1000-step 3M
            // solve; both are converged far below the smallest error fitted (≈ 5e-5).
            var reference = new ProbabilityFlowRk4(Linear, 250).Sample(den, xT, null);
            var cross = new DpmSolver(Linear, 1000, 3, "dpmsolver++", "multistep", "logSNR").Sample(den, xT, null);
            Assert.True(MeanDistance(cross, reference) < 3e-7, $"reference solves disagree by {MeanDistance(cross, reference):G3}");

            double SlopeOf(string algorithm, string method, int order, int[] steps, bool referenceCoefficient = false)
            {
                var errors = steps.Select(s =>
                {
                    var solver = new DpmSolver(Linear, s, order, algorithm, method, "logSNR") { ReferenceThirdOrderMultistep = referenceCoefficient };
                    return MeanDistance(solver.Sample(den, xT, null), reference);
                }).ToArray();
                for (int i = 1; i < errors.Length; i++) Assert.True(errors[i] < errors[i - 1], $"{algorithm} {method} {order}: {string.Join(", ", errors)}");
                return Slope(steps, errors);
            }

            int[] plain = [30, 60, 120], mod3 = [29, 59, 119];
            Assert.InRange(SlopeOf("dpmsolver", "singlestep", 1, plain), 0.8, 1.3);     // the same update in both forms
            foreach (var alg in DpmSolver.Algorithms)
            {
                Assert.InRange(SlopeOf(alg, "singlestep", 2, plain), 1.6, 2.6);
                Assert.InRange(SlopeOf(alg, "singlestep", 3, mod3), 2.4, 3.8);
                Assert.InRange(SlopeOf(alg, "multistep", 2, plain), 1.6, 2.6);
                Assert.InRange(SlopeOf(alg, "multistep", 3, plain), 2.4, 3.8);
            }
            // The reference code's third-order multistep term (half our D₂) is only second order.
            Assert.InRange(SlopeOf("dpmsolver++", "multistep", 3, plain, referenceCoefficient: true), 1.6, 2.35);
        });
    }

    [Fact]
    public void Order_one_equals_ddim_on_the_same_grid()
    {
        // Time-uniform with 9 steps on T = 1000 visits network times 999, 888, …, 111, 0 — DDIM's 10 uniform
        // timesteps. DDIM's last step (from step 0 to ᾱ = 1) returns x̂0, which is DPM-Solver's denoise-to-zero.
        using var scope = NewDisposeScope();
        var den = new GaussianMixtureDenoiser(TestUtil.SmallMixture(), Linear);
        var xT = randn([300, 2], dtype: ScalarType.Float64, generator: new Generator(5));
        var timesteps = Respacing.Timesteps("uniform", 1000, 10);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => 111 * i), timesteps);
        var ddim = new DdimSampler(Linear, timesteps, 0.0, false).Sample(den, xT, null);
        foreach (var alg in DpmSolver.Algorithms)
        foreach (var method in DpmSolver.Methods)
        {
            var dpm = new DpmSolver(Linear, 9, 1, alg, method, "time-uniform", denoiseToZero: true).Sample(den, xT, null);
            double diff = (dpm - ddim).abs().max().item<double>();
            Assert.True(diff < 1e-10, $"{alg} {method}: max difference from DDIM {diff:G3}");
        }
    }

    [Fact]
    public void Evaluations_are_exactly_the_steps() => OneThread(() =>
    {
        using var scope = NewDisposeScope();
        var den = new GaussianMixtureDenoiser(TestUtil.SmallMixture(), Linear);
        var xT = randn([8, 2], dtype: ScalarType.Float64, generator: new Generator(1));
        foreach (var method in DpmSolver.Methods)
        foreach (int order in new[] { 1, 2, 3 })
        foreach (int steps in new[] { 1, 2, 3, 4, 5, 7, 11, 12 })
        foreach (bool toZero in new[] { false, true })
        {
            var probe = new ProbeDenoiser(den);
            var solver = new DpmSolver(Linear, steps, order, "dpmsolver", method, "logSNR", denoiseToZero: toZero);
            solver.Sample(probe, xT, null).Dispose();
            int expected = steps + (toZero ? 1 : 0);
            Assert.Equal(expected, probe.Times.Count);
            Assert.Equal(expected, solver.Evaluations);
        }
    });

    [Fact]
    public void Singlestep_allocation_combines_orders_as_dpm_solver_fast()
    {
        for (int steps = 1; steps <= 30; steps++)
        {
            Assert.Equal(Enumerable.Repeat(1, steps), DpmSolver.SinglestepOrders(steps, 1));
            var o2 = DpmSolver.SinglestepOrders(steps, 2);
            Assert.Equal(steps, o2.Sum());
            Assert.Equal(steps / 2 + steps % 2, o2.Length);
            Assert.Equal(steps % 2 == 1 ? 1 : 2, o2[^1]);
            var o3 = DpmSolver.SinglestepOrders(steps, 3);
            Assert.Equal(steps, o3.Sum());
            Assert.Equal(steps / 3 + 1, o3.Length);
            int[] tail = (steps % 3) switch { 0 => [2, 1], 1 => [1], _ => [2] };
            Assert.Equal(tail, o3[^tail.Length..]);
            Assert.All(o3[..^tail.Length], o => Assert.Equal(3, o));
        }
    }

    [Fact]
    public void Multistep_warms_up_and_lowers_the_final_orders_when_steps_are_few()
    {
        int[] Orders(int steps, int order, bool lof = true) =>
            new DpmSolver(Linear, steps, order, method: "multistep", lowerOrderFinal: lof).Plan.Select(s => s.Order).ToArray();
        Assert.Equal([1, 2, 3, 3, 3, 3, 2, 1], Orders(8, 3));
        Assert.Equal([1, 2, 3, 3, 3, 3, 3, 3, 3, 3], Orders(10, 3));                 // 3M: lowered below 10 steps
        Assert.Equal([1, 2, 3, 3, 3, 3, 3, 3], Orders(8, 3, lof: false));
        Assert.Equal(new[] { 1 }.Concat(Enumerable.Repeat(2, 12)).Append(1), Orders(14, 2)); // 2M: below 15 steps
        Assert.Equal(new[] { 1 }.Concat(Enumerable.Repeat(2, 14)), Orders(15, 2));
        Assert.Equal([1, 1], Orders(2, 3));
        Assert.Equal([1], Orders(1, 2));
    }

    [Fact]
    public void The_network_is_asked_at_the_solver_times_unrounded()
    {
        // Time-conditioning wrappers (E-TSDM's time sharing) must see (t − 1/N)·N as a real number.
        using var scope = NewDisposeScope();
        var den = new GaussianMixtureDenoiser(TestUtil.SmallMixture(), Linear);
        var xT = randn([4, 2], dtype: ScalarType.Float64, generator: new Generator(2));
        foreach (var (method, order, skip) in new[] { ("multistep", 3, "logSNR"), ("singlestep", 3, "time-quadratic"), ("singlestep", 2, "time-uniform") })
        {
            var probe = new ProbeDenoiser(den);
            var solver = new DpmSolver(Linear, 7, order, "dpmsolver++", method, skip);
            solver.Sample(probe, xT, null).Dispose();
            var expected = solver.EvaluationTimes().Select(t => (t - 1.0 / 1000) * 1000).ToArray();
            Assert.Equal(expected.Length, probe.Times.Count);
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.All(probe.Times[i], u => Assert.Equal(expected[i], u));       // the same time for every row, bit for bit
                Assert.InRange(probe.Times[i][0], 0.0, 999.0 + 1e-9);
            }
            Assert.Equal(999.0, probe.Times[0][0], 9);                                // t = 1 is step N − 1
            Assert.Contains(probe.Times, ts => Math.Abs(ts[0] - Math.Round(ts[0])) > 1e-3);
        }
    }

    [Fact]
    public void Cosine_tail_is_dropped_and_the_network_time_map_stays_exact()
    {
        var cos = NoiseSchedule.Cosine(1000);
        var vp = ContinuousVp.ForSolver(cos);
        Assert.True(vp.DroppedTail > 0, "the cosine schedule's last steps have λ < −5.1");
        int kept = 1000 - vp.DroppedTail;
        Assert.Equal(kept, vp.N);
        Assert.True(ContinuousVp.LambdaOfAlphaBar(cos.AlphasCumprod[kept - 1]) >= -5.1);
        Assert.True(ContinuousVp.LambdaOfAlphaBar(cos.AlphasCumprod[kept]) < -5.1);
        // The kept steps keep their ᾱ and their network time: t_n = (n+1)/N' ↦ n.
        for (int n = 0; n < kept; n += 7)
        {
            Assert.Equal(cos.AlphasCumprod[n], vp.AlphaBar(vp.TimeOfStep(n)), 13);
            Assert.Equal(n, vp.ModelTime(vp.TimeOfStep(n)), 9);
        }
        Assert.Equal(kept - 1, vp.ModelTime(vp.TMax), 9);
        Assert.Equal(0.0, vp.ModelTime(vp.TMin), 12);
        Assert.Equal(0, ContinuousVp.ForSolver(Linear).DroppedTail);              // linear, T = 1000: λ_999 ≈ −5.06

        // A solver on the cosine schedule never asks the network beyond the kept steps, and lands on the mixture.
        using var scope = NewDisposeScope();
        var g = TestUtil.SmallMixture();
        var probe = new ProbeDenoiser(new GaussianMixtureDenoiser(g, cos));
        var x = new DpmSolver(cos, 20, 2).Sample(probe, randn([2000, 2], dtype: ScalarType.Float64, generator: new Generator(6)), null);
        Assert.Equal(kept - 1, probe.Times.Max(ts => ts[0]), 9);
        var (mean, cov) = TestUtil.Moments(g);
        var m = TestUtil.Row(x.mean([0]));
        for (int i = 0; i < 2; i++) Assert.InRange(m[i], mean[i] - 4 * Math.Sqrt(cov[i, i] / 2000), mean[i] + 4 * Math.Sqrt(cov[i, i] / 2000));
    }

    [Fact]
    public void Spacings_are_uniform_in_their_variable_and_end_exactly()
    {
        var vp = ContinuousVp.ForSolver(Linear);
        var logsnr = ContinuousSpacing.Times("logSNR", vp, 1.0, 1e-3, 12);
        var lam = logsnr.Select(vp.Lambda).ToArray();
        for (int i = 1; i < lam.Length; i++) Assert.Equal(lam[1] - lam[0], lam[i] - lam[i - 1], 9);
        var quad = ContinuousSpacing.Times("time-quadratic", vp, 1.0, 1e-3, 12);
        for (int i = 1; i < quad.Length; i++) Assert.Equal(Math.Sqrt(quad[1]) - Math.Sqrt(quad[0]), Math.Sqrt(quad[i]) - Math.Sqrt(quad[i - 1]), 12);
        var uni = ContinuousSpacing.Times("time-uniform", vp, 1.0, 1e-3, 12);
        foreach (var ts in new[] { logsnr, quad, uni })
        {
            Assert.Equal(1.0, ts[0]);
            Assert.Equal(1e-3, ts[^1]);
            Assert.True(ts.Zip(ts.Skip(1)).All(p => p.Second < p.First), "times must descend");
        }
        Assert.Throws<UserError>(() => ContinuousSpacing.Times("log-snr", vp, 1, 1e-3, 4));
    }

    [Fact]
    public void Clipping_applies_to_the_data_form_only()
    {
        using var scope = NewDisposeScope();
        // Means outside [−1, 1]: unclipped samples leave the box, clipped x̂0 (returned by denoise-to-zero) cannot.
        var g = new GaussianMixture([0.5, 0.5], [[-2.0, 0.0], [2.0, 1.5]], [0.2, 0.2]);
        var den = new GaussianMixtureDenoiser(g, Linear);
        var xT = randn([200, 2], dtype: ScalarType.Float64, generator: new Generator(4));
        var free = new DpmSolver(Linear, 10, 2, denoiseToZero: true).Sample(den, xT, null);
        var clipped = new DpmSolver(Linear, 10, 2, denoiseToZero: true, clipDenoised: true).Sample(den, xT, null);
        Assert.True(free.abs().max().item<double>() > 1.5);
        Assert.True(clipped.abs().max().item<double>() <= 1.0);
        var e = Assert.Throws<UserError>(() => new DpmSolver(Linear, 10, 2, "dpmsolver", clipDenoised: true));
        Assert.Contains("dpmsolver++", e.Message);
    }

    [Fact]
    public void Bad_options_are_one_line_errors()
    {
        Assert.Contains("--order", Assert.Throws<UserError>(() => new DpmSolver(Linear, 10, 4)).Message);
        Assert.Contains("--steps", Assert.Throws<UserError>(() => new DpmSolver(Linear, 0)).Message);
        Assert.Contains("--algorithm", Assert.Throws<UserError>(() => new DpmSolver(Linear, 10, 2, "dpm++")).Message);
        Assert.Contains("--method", Assert.Throws<UserError>(() => new DpmSolver(Linear, 10, 2, method: "adaptive")).Message);
        Assert.Contains("--skip", Assert.Throws<UserError>(() => new DpmSolver(Linear, 10, 2, skip: "uniform")).Message);
    }

    [Fact]
    public void Sampling_memory_does_not_grow()
    {
        var den = new GaussianMixtureDenoiser(TestUtil.SmallMixture(), Linear);
        using var xT = randn([64, 2], dtype: ScalarType.Float64);
        foreach (var method in DpmSolver.Methods)
        {
            TestUtil.AssertSamplingLeaksNothing(new DpmSolver(Linear, 12, 3, "dpmsolver++", method, denoiseToZero: true), den, xT);
        }
    }

    [Fact]
    public void Learned_networks_sample_in_their_dtype_for_images_and_vectors()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        using var unet = new UNet(1, 8, channels: 16, channelMult: [1, 2], resBlocks: 1, attentionResolutions: [], headChannels: 16, dropout: 0, normGroups: 8);
        using var mlp = new MlpDenoiser(2, 32, 1, 16, 0);
        unet.eval();
        mlp.eval();
        foreach (var prediction in new[] { Prediction.Epsilon, Prediction.V })
        foreach (var (net, shape, isImage) in new (DenoiserNetwork, long[], bool)[] { (unet, [3, 1, 8, 8], true), (mlp, [5, 2], false) })
        foreach (var alg in DpmSolver.Algorithms)
        {
            var cfg = new Diffusion.Config.SampleConfig { Sampler = "dpm-solver", Steps = 5, Algorithm = alg, Method = "singlestep", Order = 3, DenoiseToZero = true };
            var sampler = Samplers.Create(cfg, Linear, clipDefault: isImage);
            using var _ = no_grad();
            var x = sampler.Sample(new NetworkDenoiser(net, prediction), randn(shape, generator: new Generator(2)), null);
            Assert.Equal(shape, x.shape);
            Assert.Equal(ScalarType.Float32, x.dtype);
            Assert.True(x.isfinite().all().item<bool>());
            // Images are clipped by default in the data form; denoise-to-zero returns the clipped x̂0.
            if (isImage && alg == "dpmsolver++") Assert.True(x.abs().max().item<float>() <= 1f);
        }
    }

    [Fact]
    public void Sample_config_carries_the_solver_in_kebab_case_keys()
    {
        var tree = Diffusion.Config.ConfigLoader.EmbeddedTree("toy");
        foreach (var set in new[] { "sample.sampler=dpm-solver", "sample.algorithm=dpmsolver", "sample.method=singlestep", "sample.order=3",
                                    "sample.skip=logSNR", "sample.lower-order-final=false", "sample.denoise-to-zero=true", "sample.steps=12",
                                    "sample.eps-scale-b=1.01", "sample.eps-scale-k=1e-6" })
            Diffusion.Config.ConfigLoader.ApplySet(tree, set);
        var cfg = Diffusion.Config.ConfigLoader.FromTree(tree, "test");
        var json = Diffusion.Config.ConfigLoader.ToJson(cfg);
        foreach (var key in new[] { "\"algorithm\": \"dpmsolver\"", "\"lower-order-final\": false", "\"denoise-to-zero\": true", "\"eps-scale-b\": 1.01", "\"eps-scale-k\": 1E-06" })
            Assert.Contains(key, json);
        Assert.Equal(new EpsilonScaling(1.01, 1e-6), EpsilonScaling.From(cfg.Sample));
        var dpm = Assert.IsType<DpmSolver>(Samplers.Create(cfg.Sample, Linear, clipDefault: false));
        Assert.Equal(13, dpm.Evaluations);
        Assert.Equal(DpmSolver.SinglestepOrders(12, 3), dpm.Plan.Select(p => p.Order));
        Assert.StartsWith("dpm-solver singlestep order 3, 12 steps (logSNR, denoise to zero), epsilon scaling", Samplers.Describe(cfg.Sample));
    }
}

/// <summary>k-diffusion's Euler and Heun (EDM) samplers in σ on the exact mixture model.</summary>
public class KarrasSamplerTests
{
    private static readonly NoiseSchedule Linear = NoiseSchedule.Linear(1000);

    private static double MeanDistance(Tensor a, Tensor b) => (a - b).pow(2).sum(1).sqrt().mean().item<double>();


    /// <summary>
    /// The limit both samplers converge to: the probability-flow ODE solved to σ_min (an RK4 solve in λ, independent
    /// of them) followed by their common last step to σ = 0, which returns x̂0 at σ_min.
    /// </summary>
    internal static Tensor Reference(IDenoiser den, Tensor xT)
    {
        var atMin = new ProbabilityFlowRk4(Linear, 250).Sample(den, xT, null);
        var step = Linear.Step(0, atMin);
        var (_, x0) = den.EpsAndX0(atMin, step);
        return x0;
    }

    [Fact]
    public void Euler_converges_at_order_one_and_heun_at_order_two()
    {
        int threads = get_num_threads();
        set_num_threads(1);
        try
        {
            using var scope = NewDisposeScope();
            var den = new GaussianMixtureDenoiser(TestUtil.SmallMixture(), Linear);
            var xT = randn([200, 2], dtype: ScalarType.Float64, generator: new Generator(3));
            var reference = Reference(den, xT);
            int[] steps = [20, 40, 80, 160];
            double[] Errors(bool heun) => steps.Select(n => MeanDistance(new KarrasSamplers(Linear, n, heun).Sample(den, xT, null), reference)).ToArray();
            var euler = Errors(false);
            var heunErr = Errors(true);
            Console.WriteLine($"euler {string.Join(", ", euler.Select(e => e.ToString("E3")))}; heun {string.Join(", ", heunErr.Select(e => e.ToString("E3")))}");
            Console.WriteLine($"slopes euler {DpmSolverTests.Slope(steps, euler):F3} heun {DpmSolverTests.Slope(steps, heunErr):F3}");
            for (int i = 1; i < steps.Length; i++)
            {
                Assert.True(euler[i] < euler[i - 1], string.Join(", ", euler));
                Assert.True(heunErr[i] < heunErr[i - 1], string.Join(", ", heunErr));
            }
            Assert.InRange(DpmSolverTests.Slope(steps, euler), 0.8, 1.3);
            Assert.InRange(DpmSolverTests.Slope(steps, heunErr), 1.7, 2.4);
        }
        finally { set_num_threads(threads); }
    }

    [Fact]
    public void Karras_levels_time_map_and_evaluation_counts_follow_k_diffusion()
    {
        var view = new SigmaView(Linear);
        Assert.Equal(Math.Sqrt((1 - Linear.AlphasCumprod[0]) / Linear.AlphasCumprod[0]), view.SigmaMin, 15);
        var sig = SigmaView.Karras(6, view.SigmaMin, view.SigmaMax);
        Assert.Equal(7, sig.Length);
        Assert.Equal(view.SigmaMax, sig[0], 12);
        Assert.Equal(view.SigmaMin, sig[5], 12);
        Assert.Equal(0.0, sig[6]);
        // (σ_i^{1/ρ}) is evenly spaced.
        var roots = sig[..6].Select(v => Math.Pow(v, 1 / 7.0)).ToArray();
        for (int i = 1; i < 5; i++) Assert.Equal(roots[1] - roots[0], roots[i + 1] - roots[i], 12);
        // σ → t: the discrete σ_n map to n; between two levels log σ is interpolated linearly.
        foreach (int n in new[] { 0, 1, 250, 998, 999 }) Assert.Equal(n, view.TimeOf(view.Sigmas[n]), 9);
        double mid = Math.Exp(0.25 * Math.Log(view.Sigmas[400]) + 0.75 * Math.Log(view.Sigmas[401]));
        Assert.Equal(400.75, view.TimeOf(mid), 9);
        // Evaluations counted honestly: Euler n, Heun 2n − 1 (its last step, to σ = 0, is an Euler step).
        using var scope = NewDisposeScope();
        var xT = randn([8, 2], dtype: ScalarType.Float64, generator: new Generator(1));
        foreach (var (heun, expected) in new[] { (false, 10), (true, 19) })
        {
            var den = new GaussianMixtureDenoiser(TestUtil.SmallMixture(), Linear);
            var sampler = new KarrasSamplers(Linear, 10, heun);
            int reported = 0;
            sampler.Sample(den, xT, null, (d, t) => reported = t);
            Assert.Equal(expected, den.Evaluations);
            Assert.Equal(expected, sampler.Evaluations);
            Assert.Equal(expected, reported);
        }
    }
}

/// <summary>
/// <c>--dpm-compat reference</c> against the DPM-Solver authors' own code: <c>Fixtures/dpm-reference.npz</c> holds
/// the outputs of <c>dpm_solver_pytorch.py</c> (commit 8acf2bb) on the exact mixture in float64, written by
/// <c>tests/tools/dpm_reference.py</c> (108 cases: both algorithms, singlestep and multistep, orders 1–3, all three
/// skip types, 8/12/20 steps).
/// </summary>
public class DpmReferenceTests
{
    private static readonly NoiseSchedule Linear = NoiseSchedule.Linear(1000);

    public static IEnumerable<object[]> Cases()
    {
        using var arrays = new DisposableDictionary(Diffusion.Data.Npz.Read(Path.Combine(AppContext.BaseDirectory, "Fixtures", "dpm-reference.npz")));
        return arrays.Keys.Where(k => k.Contains('|')).Order(StringComparer.Ordinal).Select(k => new object[] { k }).ToList();
    }

    private sealed class DisposableDictionary(Dictionary<string, Tensor> d) : IDisposable
    {
        public IEnumerable<string> Keys => d.Keys;
        public Tensor this[string k] => d[k];
        public void Dispose() { foreach (var t in d.Values) t.Dispose(); }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Reference_compat_reproduces_the_reference_code(string key)
    {
        using var scope = NewDisposeScope();
        using var arrays = new DisposableDictionary(Diffusion.Data.Npz.Read(Path.Combine(AppContext.BaseDirectory, "Fixtures", "dpm-reference.npz")));
        var p = key.Split('|');   // algorithm|method|order|skip|steps, in the reference's spellings
        string skip = p[3].Replace('_', '-');
        var solver = new DpmSolver(Linear, int.Parse(p[4]), int.Parse(p[2]), p[0], p[1], skip, compat: "reference");
        var ours = solver.Sample(new GaussianMixtureDenoiser(TestUtil.SmallMixture(), Linear), arrays["xT"], null);
        double diff = (ours - arrays[key]).abs().max().item<double>();
        Assert.True(diff <= 5e-4, $"{key}: largest difference {diff:E2}");
        if (Environment.GetEnvironmentVariable("DIFFUSION_DPM_REPORT") == "1") Console.WriteLine($"dpm-reference {key}: {diff:E2}");
    }

    [Theory]
    [InlineData("dpmsolver++|multistep|3|logSNR|20")]        // the Taylor D₂
    [InlineData("dpmsolver++|multistep|2|time_uniform|12")]  // lower-order final below 15 steps for order 2
    public void The_corrected_default_differs_from_the_reference_where_documented(string key)
    {
        using var scope = NewDisposeScope();
        using var arrays = new DisposableDictionary(Diffusion.Data.Npz.Read(Path.Combine(AppContext.BaseDirectory, "Fixtures", "dpm-reference.npz")));
        var p = key.Split('|');
        var solver = new DpmSolver(Linear, int.Parse(p[4]), int.Parse(p[2]), p[0], p[1], p[3].Replace('_', '-'));
        var ours = solver.Sample(new GaussianMixtureDenoiser(TestUtil.SmallMixture(), Linear), arrays["xT"], null);
        Assert.True((ours - arrays[key]).abs().max().item<double>() > 1e-3, key);
    }
}
