using Diffusion.Config;
using Diffusion.Metrics;
using Diffusion.Models;
using Diffusion.Sampling;
using Diffusion.Schedules;
using Diffusion.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>A network that records what it is asked and answers with a given function.</summary>
internal sealed class ProbeNetwork(long[] shape, Func<Tensor, Tensor, Tensor> answer) : DenoiserNetwork("Probe")
{
    public List<double[]> Times { get; } = [];
    public List<Tensor> Inputs { get; } = [];
    public override long[] ExampleShape => shape;

    public override Tensor forward(Tensor x, Tensor t)
    {
        Times.Add(t.to_type(ScalarType.Float64).data<double>().ToArray());
        Inputs.Add(x.detach().clone().DetachFromDisposeScope());
        return answer(x, t);
    }
}

/// <summary>An IDenoiser that records the times it is called with.</summary>
internal sealed class ProbeDenoiser(Prediction p = Prediction.Epsilon) : IDenoiser
{
    public List<double> Times { get; } = [];
    public Prediction Prediction => p;
    public Tensor Predict(Tensor x, TimeStep step)
    {
        Times.AddRange(step.T.to_type(ScalarType.Float64).data<double>().ToArray().Distinct());
        return zeros_like(x);
    }
}

public class InputPerturbationTests
{
    [Fact]
    public void Network_input_variance_is_alpha_bar_var_x0_plus_noise_with_gamma()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(1000);
        var gen = new Generator(1);
        const int n = 200_000;
        double gamma = 0.3, varX0 = 0.25;
        var x0 = randn([n, 1], dtype: ScalarType.Float64, generator: gen) * Math.Sqrt(varX0);
        foreach (int t in new[] { 0, 100, 500, 999 })
        {
            var tt = full(n, (long)t, dtype: ScalarType.Int64);
            var draw = ForwardDraw.At(s, x0, tt, randn([n, 1], dtype: ScalarType.Float64, generator: gen));
            var y = InputPerturbation.Apply(draw, gamma, gen);
            double ab = s.AlphasCumprod[t];
            double expected = ab * varX0 + (1 - ab) * (1 + gamma * gamma);
            double measured = y.var().item<double>();
            Assert.InRange(measured, expected * 0.985, expected * 1.015); // ≈ 4.5 standard errors at n = 200 000
            // γ = 0 leaves x_t untouched.
            Assert.True(InputPerturbation.Apply(draw, 0, gen).equal(draw.Xt).all().item<bool>());
        }
    }

    [Fact]
    public void The_target_stays_epsilon()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(1000);
        var x0 = randn([64, 3], generator: new Generator(2));
        var probe = new ProbeNetwork([3], (x, t) => zeros_like(x));
        var objective = new DiffusionObjective([new DenoisingLoss(s, Prediction.Epsilon, new LossWeighting("constant"), 0.5)]);
        var gen = new Generator(7);
        double loss = objective.Loss(new NetworkDenoiser(probe, Prediction.Epsilon), x0, gen).item<float>();
        // The same draws: t, ε, then ξ. A zero prediction's loss is mean(ε²), not mean((ε + γξ)²).
        var g2 = new Generator(7);
        var draw = ForwardDraw.Sample(s, x0, g2);
        var xi = randn(draw.Xt.shape, generator: g2);
        Assert.Equal(draw.Eps.pow(2).mean().item<float>(), loss, 5);
        Assert.NotEqual((draw.Eps + 0.5 * xi).pow(2).mean().item<float>(), loss, 3);
        // and the network saw y = x_t + σ·γ·ξ.
        Assert.True(probe.Inputs[0].allclose(draw.Xt + draw.Sigma * (0.5 * xi), rtol: 1e-5, atol: 1e-6));
    }
}

public class LossWeightingTests
{
    private static readonly NoiseSchedule Linear = NoiseSchedule.Linear(1000);

    [Theory]
    [InlineData(0)]
    [InlineData(99)]
    [InlineData(499)]
    [InlineData(999)]
    public void Each_member_equals_its_closed_form(int t)
    {
        double ab = Linear.AlphasCumprod[t], snr = ab / (1 - ab);
        Assert.Equal(1.0, new LossWeighting("constant").Weight(snr));
        Assert.Equal((1 - ab) / ab, new LossWeighting("snr").Weight(snr), 9);
        Assert.Equal(1.0 / (1 + snr), new LossWeighting("p2").Weight(snr), 12);
        Assert.Equal(1.0 / Math.Pow(0.5 + snr, 2), new LossWeighting("p2", p2K: 0.5, p2Gamma: 2).Weight(snr), 12);
        Assert.Equal(Math.Min(snr, 5.0) / snr, new LossWeighting("min-snr").Weight(snr), 12);
        Assert.Equal(Math.Sqrt((1 - ab) / ab), new LossWeighting("debiased").Weight(snr), 9);
        // debiased = P2 with k = 0, γ = ½
        Assert.Equal(new LossWeighting("debiased").Weight(snr), new LossWeighting("p2", 0, 0.5).Weight(snr), 9);
    }

    [Fact]
    public void Debiased_weights_have_the_documented_values()
    {
        var w = new LossWeighting("debiased");
        Assert.Equal(0.010, w.Weight(Linear.Snr[0]), 3);
        Assert.Equal(0.34, w.Weight(Linear.Snr[99]), 2);
        Assert.Equal(3.4, w.Weight(Linear.Snr[499]), 1);
        Assert.InRange(w.Weight(Linear.Snr[999]), 155, 159);
    }

    /// <summary>A denoiser that answers with a function of (x, step), in x's dtype.</summary>
    private sealed class FuncDenoiser(Prediction p, Func<Tensor, TimeStep, Tensor> answer) : IDenoiser
    {
        public Prediction Prediction => p;
        public Tensor Predict(Tensor x, TimeStep step) => answer(x, step);
    }

    // A model that predicts ε̂ = 0.3·x_t + 0.1 expressed in parameterisation p (float64 throughout).
    private static IDenoiser Predictor(Prediction p, NoiseSchedule s) => new FuncDenoiser(p, (x, step) =>
    {
        var a = step.Alpha; var sg = step.Sigma;
        var eps = 0.3 * x + 0.1;
        var x0 = Parameterization.X0FromEps(x, eps, a, sg);
        return p switch { Prediction.Epsilon => eps, Prediction.X0 => x0, _ => Parameterization.V(x0, eps, a, sg) };
    });

    [Fact]
    public void Snr_weighted_eps_loss_equals_x0_mse_on_the_same_draw()
    {
        using var scope = NewDisposeScope();
        var x0 = randn([256, 2], dtype: ScalarType.Float64, generator: new Generator(3));
        var objective = new DiffusionObjective([new DenoisingLoss(Linear, Prediction.Epsilon, new LossWeighting("snr"))]);
        double weighted = objective.Loss(Predictor(Prediction.Epsilon, Linear), x0, new Generator(4)).item<double>();
        var draw = ForwardDraw.Sample(Linear, x0, new Generator(4));
        var epsHat = 0.3 * draw.Xt + 0.1;
        var x0Hat = Parameterization.X0FromEps(draw.Xt, epsHat, draw.Alpha, draw.Sigma);
        double x0Mse = (x0Hat - x0).pow(2).mean().item<double>();
        Assert.Equal(x0Mse, weighted, 9);
    }

    [Fact]
    public void Eps_x0_and_v_predictions_give_the_same_weighted_loss()
    {
        using var scope = NewDisposeScope();
        var x0 = randn([256, 2], dtype: ScalarType.Float64, generator: new Generator(5));
        foreach (var name in LossConfig.Weightings)
        {
            var losses = new[] { Prediction.Epsilon, Prediction.X0, Prediction.V }.Select(p =>
                new DiffusionObjective([new DenoisingLoss(Linear, p, new LossWeighting(name))])
                    .Loss(Predictor(p, Linear), x0, new Generator(6)).item<double>()).ToArray();
            Assert.Equal(losses[0], losses[1], 6);
            Assert.Equal(losses[0], losses[2], 6);
        }
    }
}

public class TimeSharingTests
{
    [Fact]
    public void F_takes_the_left_end_of_each_interval_below_the_threshold()
    {
        var ts = new TimeSharing(5, 100);
        foreach (int i in Enumerable.Range(1, 4))
        {
            double b = 20 * i;
            Assert.Equal(20 * (i - 1), ts.Map(b - 1e-9));
            Assert.Equal(20 * (i - 1), ts.Map(b - 1));
            Assert.Equal(b, ts.Map(b));
            Assert.Equal(b, ts.Map(b + 0.5));
        }
        Assert.Equal(0, ts.Map(0));
        Assert.Equal(80, ts.Map(99.999));
        Assert.Equal(100, ts.Map(100));   // at t̃ the time is its own
        Assert.Equal(100.25, ts.Map(100.25));
        Assert.Equal(999, ts.Map(999));
        var odd = new TimeSharing(3, 100);
        Assert.Equal(100.0 / 3, odd.Map(100.0 / 3), 12);
        Assert.Equal(2 * 100.0 / 3, odd.Map(2 * 100.0 / 3), 12);
        Assert.Equal(0, odd.Map(33.3));
    }

    [Fact]
    public void Training_gives_the_network_f_of_t_and_the_true_noise_level()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(1000);
        var probe = new ProbeNetwork([2], (x, t) => zeros_like(x));
        var objective = new DiffusionObjective(s, Prediction.Epsilon);
        var x0 = zeros(4096, 2);
        // Time sharing is a layer of the training denoiser, built the way the trainer builds it.
        var cfg = ConfigLoader.FromTree(ConfigLoader.EmbeddedTree("toy"));
        cfg.TimeSharing.Intervals = 5;
        objective.Loss(DenoiserStack.ForNetwork(cfg, probe, null, false), x0, new Generator(1));
        var draw = ForwardDraw.Sample(s, x0, new Generator(1));
        var tTrue = draw.T.data<long>().ToArray();
        var tSeen = probe.Times[0];
        for (int i = 0; i < tTrue.Length; i++)
            Assert.Equal(tTrue[i] < 100 ? tTrue[i] / 20 * 20 : tTrue[i], tSeen[i]);
        Assert.Contains(tTrue, v => v < 100);
        // x0 = 0, so the input is σ_t·ε with the true t.
        Assert.True(probe.Inputs[0].allclose(draw.Xt, rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void Every_sampler_asks_the_network_at_f_of_t()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(1000);
        var ts = new TimeSharing(5, 100);
        foreach (ISampler sampler in new ISampler[]
        {
            new DdpmSampler(s, Enumerable.Range(0, 1000).ToArray(), false, false),
            new DdimSampler(s, Respacing.Timesteps("uniform", 1000, 37), 0, false),
            new DdimSampler(s, Respacing.Timesteps("quadratic", 1000, 20), 0.5, false),
            new DpmSolver(s, 20, 3, "dpmsolver++", "multistep", "logSNR", true, false, false),
            new DpmSolver(s, 15, 2, "dpmsolver", "singlestep", "time-uniform", true, false, false),
        })
        {
            var probe = new ProbeDenoiser();
            sampler.Sample(new TimeSharedDenoiser(probe, ts), zeros(2, 2), new Generator(1));
            Assert.All(probe.Times.Where(t => t < 100), t => Assert.True(t % 20 == 0, $"time {t}"));
            Assert.Contains(probe.Times, t => t >= 100);
        }
        // Real-valued times.
        var p = new ProbeDenoiser();
        var z = zeros(3, 2);
        new TimeSharedDenoiser(p, ts).Predict(z, new ContinuousVp(s).StepsAtModelTimes([33.7, 99.5, 150.25], z));
        Assert.Equal(new double[] { 20, 80, 150.25 }, p.Times);
    }

    [Fact]
    public void A_checkpoint_trained_with_time_sharing_is_sampled_with_it()
    {
        var cfg = ConfigLoader.FromTree(ConfigLoader.EmbeddedTree("toy"));
        cfg.TimeSharing.Intervals = 4;
        cfg.TimeSharing.Threshold = 50;
        using var net = new MlpDenoiser(2, 16, 1);
        var d = Assert.IsType<TimeSharedDenoiser>(DenoiserStack.ForSampling(cfg, net, 0));
        Assert.Equal(4, d.Sharing.Intervals);
        Assert.Equal(50, d.Sharing.Threshold);
        cfg.TimeSharing.Intervals = 0;
        Assert.IsType<NetworkDenoiser>(DenoiserStack.ForSampling(cfg, net, 0));
    }
}

public class ConsistencyTests
{
    // The biased MMD² with the five-kernel RBF, computed with loops.
    private static double DirectMmd2(double[][] x, double[][] y)
    {
        var pool = x.Concat(y).ToArray();
        double D2(double[] a, double[] b) => a.Zip(b, (u, v) => (u - v) * (u - v)).Sum();
        double sum = 0; int pairs = 0;
        for (int i = 0; i < pool.Length; i++)
            for (int j = 0; j < pool.Length; j++)
                if (i != j) { sum += D2(pool[i], pool[j]); pairs++; }
        double bw = sum / pairs;
        double K(double[] a, double[] b) => new[] { 0.25, 0.5, 1, 2, 4 }.Sum(c => Math.Exp(-D2(a, b) / (bw * c)));
        double Mean(double[][] a, double[][] b) => a.SelectMany(u => b.Select(v => K(u, v))).Average();
        return Mean(x, x) - 2 * Mean(x, y) + Mean(y, y);
    }

    [Fact]
    public void Mmd_matches_a_direct_computation()
    {
        var rnd = new Random(4);
        double[][] Pts(int n, double shift) => Enumerable.Range(0, n).Select(_ => new[] { rnd.NextDouble() + shift, rnd.NextDouble() * 2, rnd.NextDouble() - 0.5 }).ToArray();
        var x = Pts(7, 0); var y = Pts(5, 0.3);
        using var tx = tensor(x.SelectMany(r => r).ToArray(), [7, 3]);
        using var ty = tensor(y.SelectMany(r => r).ToArray(), [5, 3]);
        Assert.Equal(DirectMmd2(x, y), Mmd.Biased(tx, ty).item<double>(), 12);
    }

    [Fact]
    public void Mmd_is_near_zero_for_one_distribution_and_grows_with_a_mean_shift()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(5);
        var a = randn([300, 4], dtype: ScalarType.Float64, generator: gen);
        var b = randn([300, 4], dtype: ScalarType.Float64, generator: gen);
        double same = Mmd.Biased(a, b).item<double>();
        var values = new[] { 0.25, 0.5, 1.0, 2.0 }.Select(d => Mmd.Unbiased(a, b + d).item<double>()).ToArray();
        // The biased estimator keeps the kernel diagonal (5 per point): about 5·(1/n + 1/m) = 0.033 above the
        // unbiased one, which is ≈ 0 for one distribution.
        Assert.True(same < 0.04, $"biased MMD² of one distribution {same:G3}");
        Assert.True(Math.Abs(Mmd.Unbiased(a, b).item<double>()) < 0.01, "unbiased MMD² of one distribution");
        for (int i = 1; i < values.Length; i++) Assert.True(values[i] > values[i - 1]);
        Assert.True(values[0] > 0.01, $"a shift of 0.25 gives unbiased MMD² {values[0]:G3}");
    }

    [Fact]
    public void Head_and_tail_draws_respect_their_ranges()
    {
        var reg = new ConsistencyRegularizer(NoiseSchedule.Linear(1000), 5);
        var gen = new Generator(3);
        var ks = new HashSet<int>();
        for (int i = 0; i < 2000; i++)
        {
            var (head, k, tail) = reg.DrawSteps(gen);
            Assert.InRange(head, 1, 999);
            Assert.InRange(k, 1, 5);
            Assert.Equal(Math.Max(head - k, 0), tail);
            ks.Add(k);
        }
        Assert.Equal(new[] { 1, 2, 3, 4, 5 }, ks.OrderBy(k => k));
        var small = new ConsistencyRegularizer(NoiseSchedule.Cosine(3), 5);
        for (int i = 0; i < 200; i++) Assert.True(small.DrawSteps(gen).Tail >= 0);
    }

    [Fact]
    public void Gradients_reach_the_parameters_through_every_unrolled_step()
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        var net = new MlpDenoiser(2, 32, 2, 16);
        using (no_grad()) foreach (var p in net.parameters()) p.add_(randn_like(p) * 0.1);
        var s = NoiseSchedule.Linear(1000);
        var reg = new ConsistencyRegularizer(s, 5);
        var x0 = randn([32, 2], generator: new Generator(1));
        // Find a seed whose draw unrolls 5 steps.
        ulong seed = 0;
        while (reg.DrawSteps(new Generator(seed)).K != 5 || reg.DrawSteps(new Generator(seed)).Head < 10) seed++;
        var r = reg.Compute(new NetworkDenoiser(net, Prediction.Epsilon), x0, new Generator(seed), out var steps);
        Assert.Equal(5, steps.K);
        var grads = torch.autograd.grad([r], net.parameters().Cast<Tensor>().ToList()).Select(g => g.clone()).ToList();
        Assert.Contains(grads, g => g.abs().sum().item<float>() > 0);
        // The same draw with the graph cut after each step but the last has different gradients:
        // the full gradient includes the paths through the earlier steps.
        var gen = new Generator(seed);
        var (head, k, tail) = reg.DrawSteps(gen);
        var rCut = CutChain(net, s, x0, gen, head, tail);
        var gradsCut = torch.autograd.grad([rCut], net.parameters().Cast<Tensor>().ToList());
        double diff = grads.Zip(gradsCut, (a, b) => (a - b).abs().sum().item<float>()).Sum();
        Assert.True(diff > 1e-6, "gradients through the unrolled chain must differ from last-step-only gradients");
        Assert.Equal(r.item<float>(), rCut.item<float>(), 5);
    }

    // The regulariser's computation with every step but the last detached (same draws, same value).
    private static Tensor CutChain(DenoiserNetwork net, NoiseSchedule s, Tensor x0, Generator gen, int head, int tail)
    {
        long half = x0.shape[0] / 2;
        var a = x0.narrow(0, 0, half); var b = x0.narrow(0, half, x0.shape[0] - half);
        var h = a * s.SqrtAlphasCumprod[head] + randn(a.shape, generator: gen) * s.SqrtOneMinusAlphasCumprod[head];
        for (int st = head; st > tail; st--)
        {
            if (st != tail + 1) h = h.detach();
            var eps = net.call(h, full(h.shape[0], (float)st));
            var x0Hat = (h - eps * s.SqrtOneMinusAlphasCumprod[st]) / s.SqrtAlphasCumprod[st];
            h = x0Hat * s.PosteriorMeanCoefX0[st] + h * s.PosteriorMeanCoefXt[st] + randn(h.shape, generator: gen) * Math.Sqrt(s.PosteriorVariance[st]);
        }
        var y = b * s.SqrtAlphasCumprod[tail] + randn(b.shape, generator: gen) * s.SqrtOneMinusAlphasCumprod[tail];
        return Mmd.Biased(h, y);
    }
}

public class SoftMixtureTests
{
    private static RunConfig SmdConfig(string type)
    {
        var cfg = ConfigLoader.FromTree(ConfigLoader.EmbeddedTree(type == "unet" ? "image28" : "toy"));
        cfg.Smd.Enabled = true;
        cfg.Model.Dropout = 0; // so that one η gives one output
        if (type == "unet") { cfg.Model.Channels = 32; cfg.Model.ChannelMult = [1, 2]; cfg.Model.AttentionResolutions = []; }
        else { cfg.Model.Hidden = 32; cfg.Model.Blocks = 2; }
        return cfg;
    }

    [Theory]
    [InlineData("mlp")]
    [InlineData("unet")]
    public void Different_latents_give_different_outputs_and_gradients_reach_g(string type)
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        long[] shape = type == "unet" ? [1, 16, 16] : [2];
        var net = (SmdNetwork)ModelFactory.Create(SmdConfig(type), shape);
        // Move off the initial point where the hyper layers' output weights are zero (identity layers).
        using (no_grad()) foreach (var p in net.parameters()) p.add_(randn_like(p) * 0.05);
        var xs = new long[] { 3 }.Concat(shape).ToArray();
        var x = randn(xs);
        var t = full(3, 300f);
        var a = net.ForwardWithNoise(x, t, randn(xs));
        var b = net.ForwardWithNoise(x, t, randn(xs));
        Assert.True((a - b).abs().max().item<float>() > 1e-4, "η must change the output");
        // One η per example from the denoiser's noise generator: the same generator state gives the same output.
        var step = new TimeStep(full(3, 300.0, dtype: ScalarType.Float64), tensor(0.5f), tensor(0.5f));
        Tensor Call(ulong seed) { using var d = new NetworkDenoiser(net, Prediction.Epsilon, new Generator(seed), ownsNoise: true); return d.Predict(x, step); }
        var c = Call(9);
        Assert.True(Call(9).equal(c).all().item<bool>());
        Assert.False(Call(10).equal(c).all().item<bool>());
        Assert.Throws<InvalidOperationException>(() => net.call(x, t));

        var loss = (Call(11) - x).pow(2).mean();
        loss.backward();
        var latentGrads = net.named_parameters().Where(p => p.name.StartsWith("latent.")).ToList();
        Assert.NotEmpty(latentGrads);
        Assert.Contains(latentGrads, p => p.parameter.grad is not null && p.parameter.grad.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void Smd_checkpoint_round_trips_and_sampling_is_deterministic_given_the_seed()
    {
        var cfg = SmdConfig("mlp");
        cfg.Data.Spec = "toy:moons?n=1000";
        cfg.Train.Steps = 5; cfg.Train.BatchSize = 32;
        cfg.Sample.N = 8; cfg.Sample.Steps = 5; cfg.Sample.Sampler = "ddim";
        var dir = TestUtil.TempDir("smd");
        using (var tr = new Trainer(cfg, dir, resume: false))
        {
            tr.Run();
            using var loaded = TrainedModel.Load(dir);
            var a = (SmdNetwork)tr.EmaModel; var b = (SmdNetwork)loaded.Network;
            using var x = randn(4, 2); using var eta = randn(4, 2); using var t = full(4, 123f);
            using var _ = no_grad();
            Assert.True(a.ForwardWithNoise(x, t, eta).allclose(b.ForwardWithNoise(x, t, eta), rtol: 0, atol: 0));
        }
        using var m = TrainedModel.Load(dir);
        using var xT = randn([16, 2], generator: new Generator(3));
        var ddim = new DdimSampler(m.Schedule, Respacing.Timesteps("uniform", 1000, 10), 0, false);
        Tensor Draw(long seed) { using var _ = no_grad(); return ddim.Sample(m.CreateDenoiser(seed), xT, null); }
        using var s1 = Draw(1); using var s1b = Draw(1); using var s2 = Draw(2);
        Assert.True(s1.equal(s1b).all().item<bool>(), "same seed, same samples");
        Assert.False(s1.equal(s2).all().item<bool>(), "a fresh η at every step depends on the seed");
    }
}

public class AllRemediesTests
{
    [Fact]
    public void All_five_at_once_train_with_finite_decreasing_loss()
    {
        var cfg = ConfigLoader.FromTree(ConfigLoader.EmbeddedTree("toy"));
        cfg.Data.Spec = "toy:gmm-grid?n=5000";
        cfg.Model.Hidden = 64; cfg.Model.Blocks = 2;
        cfg.Train.Steps = 50; cfg.Train.BatchSize = 128; cfg.Train.WarmupSteps = 5; cfg.Train.LogEvery = 5;
        cfg.Perturbation.Gamma = 0.1;
        cfg.Loss.Weighting = "debiased";
        cfg.TimeSharing.Intervals = 5;
        cfg.Consistency.Weight = 1;
        cfg.Smd.Enabled = true;
        cfg.Validate();
        Assert.Equal(5, cfg.ActiveRemedies().Count);
        var dir = TestUtil.TempDir("all5");
        var losses = new List<double>();
        using (var tr = new Trainer(cfg, dir, resume: false))
        {
            tr.OnStepLoss = (_, l) => losses.Add(l);
            tr.Run();
        }
        Assert.Equal(50, losses.Count);
        Assert.All(losses, l => Assert.True(double.IsFinite(l)));
        Assert.True(losses.Skip(40).Average() < losses.Take(10).Average(), $"first 10: {losses.Take(10).Average():F3}, last 10: {losses.Skip(40).Average():F3}");
        // The run's config records exactly which remedies were on.
        var saved = Checkpoint.ReadHeader(Path.Combine(dir, Checkpoint.FileName)).RunConfig("saved");
        Assert.Equal(cfg.ActiveRemedies(), saved.ActiveRemedies());
        Assert.Contains("consistency", File.ReadAllText(Path.Combine(dir, RunLog.FileName)));
    }
}
