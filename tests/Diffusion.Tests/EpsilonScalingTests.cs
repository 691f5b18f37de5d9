using Diffusion.Config;
using Diffusion.Models;
using Diffusion.Sampling;
using Diffusion.Schedules;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>Epsilon scaling (ε̂/λ_t, λ_t = k·t + b) as a denoiser wrapper for every sampler.</summary>
public class EpsilonScalingTests
{
    private static readonly NoiseSchedule Linear = NoiseSchedule.Linear(1000);
    private static readonly ContinuousVp Vp = new(Linear);

    /// <summary>Per-row steps at the given network times.</summary>
    private static TimeStep At(Tensor x, params double[] t) => Vp.StepsAtModelTimes(t, x);

    /// <summary>The exact mixture denoiser re-expressed as an x0-predictor (x̂0 = (x − σ·ε*)/α at the step's noise level).</summary>
    private sealed class X0Denoiser(GaussianMixtureDenoiser eps) : IDenoiser
    {
        public Prediction Prediction => Prediction.X0;

        public Tensor Predict(Tensor x, TimeStep step)
        {
            using var e = eps.Predict(x, step);
            return Parameterization.X0FromEps(x, e, step.Alpha, step.Sigma);
        }
    }

    [Fact]
    public void Unit_scale_changes_nothing_and_b_above_one_shrinks_the_noise()
    {
        using var scope = NewDisposeScope();
        var den = new GaussianMixtureDenoiser(TestUtil.SmallMixture(), Linear);
        var x = randn([16, 2], dtype: ScalarType.Float64, generator: new Generator(1));
        var times = Enumerable.Range(0, 16).Select(i => 60.0 * i + 0.25 * (i % 3)).ToArray();
        var t = At(x, times);
        var eps = den.Predict(x, t);

        Assert.True(new EpsilonScaledDenoiser(den, Linear.T, 1.0, 0.0).Predict(x, t).equal(eps).all().item<bool>());
        var scaled = new EpsilonScaledDenoiser(den, Linear.T, 1.01, 0.0).Predict(x, t);
        Assert.True(scaled.allclose(eps / 1.01, rtol: 1e-15, atol: 0));
        var norms = scaled.norm(1) / eps.norm(1);
        Assert.True((norms - 1 / 1.01).abs().max().item<double>() < 1e-14);

        // With k ≠ 0 each row is divided by its own λ_t = k·t + b.
        var lin = new EpsilonScaledDenoiser(den, Linear.T, 1.005, 1e-5).Predict(x, t);
        var lambda = (tensor(times) * 1e-5 + 1.005).reshape(-1, 1);
        Assert.True(lin.allclose(eps / lambda, rtol: 1e-15, atol: 0));
    }

    [Fact]
    public void An_x0_model_is_converted_to_noise_before_scaling()
    {
        using var scope = NewDisposeScope();
        var den = new GaussianMixtureDenoiser(TestUtil.SmallMixture(), Linear);
        var x0Model = new X0Denoiser(den);
        var x = randn([8, 2], dtype: ScalarType.Float64, generator: new Generator(2));
        var t = At(x, 0, 3, 50, 120, 400, 640, 900, 999);
        var unit = new EpsilonScaledDenoiser(x0Model, Linear.T, 1.0);
        Assert.Equal(Prediction.Epsilon, unit.Prediction);
        Assert.True(unit.Predict(x, t).allclose(den.Predict(x, t), rtol: 1e-9, atol: 1e-9));
        Assert.True(new EpsilonScaledDenoiser(x0Model, Linear.T, 1.02).Predict(x, t).allclose(den.Predict(x, t) / 1.02, rtol: 1e-9, atol: 1e-9));
    }

    [Fact]
    public void Every_sampler_runs_on_the_scaled_denoiser()
    {
        using var scope = NewDisposeScope();
        var den = new GaussianMixtureDenoiser(TestUtil.SmallMixture(), Linear);
        var xT = randn([64, 2], dtype: ScalarType.Float64, generator: new Generator(3));
        var scaled = new EpsilonScaledDenoiser(den, Linear.T, 1.02, 0.0);
        foreach (var name in Samplers.Names)
        {
            var plain = new SampleConfig { Sampler = name, Steps = 20 };
            var es = new SampleConfig { Sampler = name, Steps = 20, EpsScaleB = 1.02 };
            var off = new SampleConfig { Sampler = name, Steps = 20, EpsScaleB = 1.0, EpsScaleK = 0.0 };
            // Epsilon scaling is a layer of the denoiser stack, there only when the config turns it on.
            Assert.Same(den, DenoiserStack.Build(den, null, EpsilonScaling.From(off), Linear.T));
            var stacked = DenoiserStack.Build(den, null, EpsilonScaling.From(es), Linear.T);
            Assert.IsType<EpsilonScaledDenoiser>(stacked);
            // The configured sampler on the stack equals the plain sampler run on the wrapped denoiser, and differs from the plain run.
            var a = Samplers.Create(es, Linear, false).Sample(stacked, xT, new Generator(7));
            var b = Samplers.Create(plain, Linear, false).Sample(scaled, xT, new Generator(7));
            var c = Samplers.Create(plain, Linear, false).Sample(den, xT, new Generator(7));
            Assert.True(a.equal(b).all().item<bool>(), name);
            Assert.True((a - c).abs().max().item<double>() > 1e-3, name);
        }
    }

    [Fact]
    public void Scaling_must_stay_positive()
    {
        var den = new GaussianMixtureDenoiser(TestUtil.SmallMixture(), Linear);
        Assert.Throws<UserError>(() => new EpsilonScaledDenoiser(den, Linear.T, 0.0));
        var e = Assert.Throws<UserError>(() => new EpsilonScaledDenoiser(den, Linear.T, 1.0, -0.002));
        Assert.Contains("positive", e.Message);
        Assert.Throws<ConfigException>(() => new SampleConfig { EpsScaleB = -1 }.Validate());
    }
}
