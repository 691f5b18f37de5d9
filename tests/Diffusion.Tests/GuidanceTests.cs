using Diffusion.Config;
using Diffusion.Models;
using Diffusion.Sampling;
using Diffusion.Schedules;
using Diffusion.Training;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>
/// Class conditioning and classifier-free guidance checked on the exact Gaussian-mixture model made conditional
/// (one class per component, the null class the full mixture), against closed forms.
/// </summary>
public class GuidanceTests
{
    private static readonly NoiseSchedule Linear = NoiseSchedule.Linear(1000);

    [Fact]
    public void Conditional_sampling_reproduces_each_components_mean_and_covariance()
    {
        using var scope = NewDisposeScope();
        var g = TestUtil.SmallMixture();
        var exact = new GaussianMixtureDenoiser(g, Linear, conditional: true);
        var guided = new GuidedDenoiser(exact, 0);
        const int per = 3000;
        var labels = tensor(Enumerable.Range(0, 3 * per).Select(i => (long)(i / per)).ToArray()); // 0…0 1…1 2…2
        var gen = new Generator(21);
        var xT = randn([3 * per, 2], dtype: ScalarType.Float64, generator: gen);
        var sampler = new DdpmSampler(Linear, Enumerable.Range(0, 1000).ToArray(), fixedLarge: false, clipDenoised: false);
        var x = SampleRun.Draw(sampler, guided, xT, gen, batch: 3 * per, labels: labels);
        for (int k = 0; k < 3; k++)
        {
            var xk = x.narrow(0, k * per, per);
            var mean = xk.mean([0]);
            var c = xk - mean;
            var cov = c.t().matmul(c) / (per - 1);
            double s = g.Stds[k], s2 = s * s;
            for (int d = 0; d < 2; d++)
            {
                // sampling error of a mean: s/√n; of a variance: s²·√(2/n) (5 standard errors, plus the 1000-step chain's own error)
                Assert.Equal(g.Means[k][d], mean[d].item<double>(), 5 * s / Math.Sqrt(per) + 2e-3);
                Assert.Equal(s2, cov[d, d].item<double>(), 5 * s2 * Math.Sqrt(2.0 / per) + 2e-3);
            }
            Assert.Equal(0.0, cov[0, 1].item<double>(), 5 * s2 / Math.Sqrt(per) + 2e-3);
        }
    }

    // ∇log N(x; α μ_k, v_k I) and the mixture's ∇log p, written out with doubles (independent of GaussianMixture.Score).
    private static double[] GradLogComponent(GaussianMixture g, int k, double[] x, double a, double s)
    {
        double v = a * a * g.Stds[k] * g.Stds[k] + s * s;
        return x.Select((xi, d) => -(xi - a * g.Means[k][d]) / v).ToArray();
    }

    private static double[] GradLogMixture(GaussianMixture g, double[] x, double a, double s)
    {
        int dim = x.Length;
        var logw = new double[g.Components];
        for (int k = 0; k < g.Components; k++)
        {
            double v = a * a * g.Stds[k] * g.Stds[k] + s * s, sq = 0;
            for (int d = 0; d < dim; d++) sq += Math.Pow(x[d] - a * g.Means[k][d], 2);
            logw[k] = Math.Log(g.Weights[k]) - 0.5 * dim * Math.Log(2 * Math.PI * v) - sq / (2 * v);
        }
        double m = logw.Max(), z = logw.Sum(l => Math.Exp(l - m));
        var grad = new double[dim];
        for (int k = 0; k < g.Components; k++)
        {
            double r = Math.Exp(logw[k] - m) / z;
            var gk = GradLogComponent(g, k, x, a, s);
            for (int d = 0; d < dim; d++) grad[d] += r * gk[d];
        }
        return grad;
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0)]
    [InlineData(3.0)]
    public void Guidance_on_the_exact_model_is_the_closed_form_of_the_guided_score(double w)
    {
        using var scope = NewDisposeScope();
        var g = TestUtil.SmallMixture();
        var exact = new GaussianMixtureDenoiser(g, Linear, conditional: true);
        var guided = new GuidedDenoiser(exact, w);
        var x = tensor(new double[] { 0.3, -0.2, -1.1, 0.7, 0.9, 0.8, 0.0, 0.0 }, [4, 2]);
        var labels = tensor(new long[] { 0, 2, 1, 3 }); // the last row asks for the null class
        foreach (int t in new[] { 20, 300, 800 })
        {
            double ab = Linear.AlphasCumprod[t], a = Math.Sqrt(ab), s = Math.Sqrt(1 - ab);
            int before = exact.Evaluations;
            guided.Labels = labels;
            var eps = guided.Predict(x, TimeStep.Uniform(t, a, s, x));
            Assert.Equal(before + 1, exact.Evaluations); // conditional and unconditional passes in ONE call
            for (int row = 0; row < 4; row++)
            {
                var xr = new[] { x[row, 0].item<double>(), x[row, 1].item<double>() };
                int c = (int)labels[row].item<long>();
                var uncond = GradLogMixture(g, xr, a, s);
                var cond = c == 3 ? uncond : GradLogComponent(g, c, xr, a, s);
                for (int d = 0; d < 2; d++)
                {
                    double score = (1 + w) * cond[d] - w * uncond[d];
                    Assert.Equal(-s * score, eps[row, d].item<double>(), 1e-10);
                }
            }
        }
    }

    /// <summary>The exact model re-expressed as a v- or x0-predictor (converted from its ε), to check guidance in output space.</summary>
    private sealed class Reparameterized(IDenoiser eps, Prediction kind) : IDenoiser
    {
        public Prediction Prediction => kind;
        public int Classes => eps.Classes;
        public Tensor Predict(Tensor x, TimeStep step) => Predict(x, step, null);
        public Tensor Predict(Tensor x, TimeStep step, Tensor? labels)
        {
            var e = eps.Predict(x, step, labels);
            var x0 = Parameterization.X0FromEps(x, e, step.Alpha, step.Sigma);
            return kind == Prediction.V ? Parameterization.V(x0, e, step.Alpha, step.Sigma) : x0;
        }
    }

    [Theory]
    [InlineData(Prediction.V)]
    [InlineData(Prediction.X0)]
    public void Guiding_a_v_or_x0_model_in_its_own_space_equals_guiding_epsilon(Prediction kind)
    {
        using var scope = NewDisposeScope();
        var g = TestUtil.SmallMixture();
        var x = tensor(new double[] { 0.3, -0.2, -1.1, 0.7, 0.9, 0.8 }, [3, 2]);
        var labels = tensor(new long[] { 0, 2, 1 });
        var step = TimeStep.Uniform(400, Math.Sqrt(Linear.AlphasCumprod[400]), Math.Sqrt(1 - Linear.AlphasCumprod[400]), x);
        var byEps = new GuidedDenoiser(new GaussianMixtureDenoiser(g, Linear, conditional: true), 2.5) { Labels = labels };
        var inSpace = new GuidedDenoiser(new Reparameterized(new GaussianMixtureDenoiser(g, Linear, conditional: true), kind), 2.5) { Labels = labels };
        Assert.Equal(kind, inSpace.Prediction);
        var expected = byEps.Predict(x, step);
        var got = inSpace.Eps(x, step);
        Assert.True(got.allclose(expected, rtol: 0, atol: 1e-10), $"max difference {(got - expected).abs().max().item<double>():G3}");
    }

    [Fact]
    public void Every_sampler_with_a_class_samples_that_component_alone()
    {
        // The conditional exact model asked for class k is, row by row, the exact model of the mixture of component k
        // alone; so every sampler (through the guided wrapper, w = 0, and with epsilon scaling inside it) must give the
        // samples it gives for that one-component mixture, from the same noise.
        using var scope = NewDisposeScope();
        var g = TestUtil.SmallMixture();
        foreach (var kind in Samplers.All)
        {
            var cfg = new SampleConfig { Sampler = kind.Name, Steps = 12, EpsScaleB = 1.01 };
            for (int k = 0; k < 3; k++)
            {
                var alone = new GaussianMixture([1.0], [g.Means[k]], [g.Stds[k]]);
                var gen1 = new Generator(5);
                var xT = randn([64, 2], dtype: ScalarType.Float64, generator: gen1);
                var expected = Samplers.Create(cfg, Linear, false).Sample(DenoiserStack.Build(new GaussianMixtureDenoiser(alone, Linear), null, EpsilonScaling.From(cfg), 1000), xT, gen1);
                var gen2 = new Generator(5);
                var xT2 = randn([64, 2], dtype: ScalarType.Float64, generator: gen2);
                var guided = new GuidedDenoiser(DenoiserStack.Build(new GaussianMixtureDenoiser(g, Linear, conditional: true), null, EpsilonScaling.From(cfg), 1000), 0);
                var got = SampleRun.Draw(Samplers.Create(cfg, Linear, false), guided, xT2, gen2, 64, labels: full(64, (long)k, dtype: ScalarType.Int64));
                Assert.True(got.allclose(expected, rtol: 0, atol: 1e-9), $"{kind.Name}, class {k}: max difference {(got - expected).abs().max().item<double>():G3}");
            }
        }
    }

    [Fact]
    public void Label_dropout_draws_the_null_class_at_rate_p()
    {
        using var scope = NewDisposeScope();
        const int n = 200_000, k = 10;
        var labels = randint(0, k, [n], dtype: ScalarType.Int64, generator: new Generator(3));
        foreach (double p in new[] { 0.1, 0.25 })
        {
            var kept = ClassConditioning.DropLabels(labels, p, k, new Generator(4));
            var dropped = kept == k;
            double rate = dropped.to_type(ScalarType.Float64).mean().item<double>();
            // binomial: standard error √(p(1−p)/n); 5 of them
            Assert.Equal(p, rate, 5 * Math.Sqrt(p * (1 - p) / n));
            Assert.True(where(dropped, labels, kept).equal(labels).all().item<bool>()); // the others untouched
        }
        Assert.True(ClassConditioning.DropLabels(labels, 0, k, new Generator(4)).equal(labels).all().item<bool>());
    }

    /// <summary>A conditional denoiser that records the labels it is asked with and predicts zero.</summary>
    private sealed class Recorder(int classes) : IDenoiser
    {
        public readonly List<long[]> Seen = [];
        public Prediction Prediction => Prediction.Epsilon;
        public int Classes => classes;
        public Tensor Predict(Tensor x, TimeStep step) => throw new InvalidOperationException("asked without labels");
        public Tensor Predict(Tensor x, TimeStep step, Tensor? labels)
        {
            Seen.Add(labels!.data<long>().ToArray());
            return zeros_like(x);
        }
    }

    [Fact]
    public void The_objective_drops_labels_at_rate_p_and_the_consistency_chain_sees_the_same_labels()
    {
        using var scope = NewDisposeScope();
        const int k = 5;
        const double p = 0.2;
        var s = NoiseSchedule.Linear(100);
        // the rate: many examples through the denoising term
        const int n = 20_000;
        var x0 = randn([n, 2], generator: new Generator(1));
        var labels = randint(0, k, [n], dtype: ScalarType.Int64, generator: new Generator(2));
        var rec = new Recorder(k);
        var loss = new DiffusionObjective([new DenoisingLoss(s, Prediction.Epsilon)], p, k).Loss(rec, x0, new Generator(5), null, labels);
        Assert.True(double.IsFinite(loss.item<float>()));
        var given = labels.data<long>().ToArray();
        var seen = Assert.Single(rec.Seen);
        Assert.Equal(n, seen.Length);
        double rate = seen.Count(l => l == k) / (double)n;
        Assert.Equal(p, rate, 5 * Math.Sqrt(p * (1 - p) / n));
        Assert.True(seen.Zip(given).All(q => q.First == k || q.First == q.Second));

        // the consistency chain: every step on half A is told A's labels, after the same dropout as the denoising term
        const int m = 64;
        var rec2 = new Recorder(k);
        var both = new DiffusionObjective([new DenoisingLoss(s, Prediction.Epsilon), new ConsistencyRegularizer(s, 3)], p, k);
        Assert.True(double.IsFinite(both.Loss(rec2, x0.narrow(0, 0, m), new Generator(6), null, labels.narrow(0, 0, m)).to_type(ScalarType.Float64).item<double>()));
        Assert.True(rec2.Seen.Count >= 2);
        var denoising = rec2.Seen[0];
        Assert.Equal(m, denoising.Length);
        foreach (var chain in rec2.Seen.Skip(1)) Assert.Equal(denoising.Take(m / 2), chain);
        // an unconditional objective refuses labels
        Assert.Throws<InvalidOperationException>(() => new DiffusionObjective(s, Prediction.Epsilon).Loss(rec, x0, new Generator(5), null, labels));
    }

    [Fact]
    public void Guidance_refuses_an_unconditional_model_and_a_negative_weight()
    {
        var g = TestUtil.SmallMixture();
        Assert.Contains("not class-conditional", Assert.Throws<UserError>(() => new GuidedDenoiser(new GaussianMixtureDenoiser(g, Linear), 1)).Message);
        Assert.Contains("w ≥ 0", Assert.Throws<UserError>(() => new GuidedDenoiser(new GaussianMixtureDenoiser(g, Linear, true), -1)).Message);
        Assert.Equal([3L, 3, 3], SampleRun.ClassLabels("none", 3, 3, null, 0));
        Assert.Equal([0L, 0, 1, 1, 2, 2], SampleRun.ClassLabels("all", 6, 3, null, 0));
        Assert.Equal([1L, 1], SampleRun.ClassLabels("moth", 2, 3, ["ant", "moth", "zebra"], 0));
        Assert.Equal("--class 12: the model has 10 classes; expected 0 … 9, all, random or none",
            Assert.Throws<UserError>(() => SampleRun.ClassLabels("12", 4, 10, null, 0)).Message);
        Assert.Contains("not a multiple of the 10 classes", Assert.Throws<UserError>(() => SampleRun.ClassLabels("all", 64, 10, null, 0)).Message);
        var r = SampleRun.ClassLabels("random", 5000, 10, null, 7);
        Assert.All(Enumerable.Range(0, 10), c => Assert.InRange(r.Count(l => l == c), 400, 600));
    }
}
