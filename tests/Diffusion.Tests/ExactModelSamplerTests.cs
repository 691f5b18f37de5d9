using Diffusion.Metrics;
using Diffusion.Models;
using Diffusion.Sampling;
using Diffusion.Schedules;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>Samplers checked against the exact denoiser of a Gaussian mixture, whose marginals are known.</summary>
public class ExactModelSamplerTests
{
    private static readonly NoiseSchedule Linear = NoiseSchedule.Linear(1000);

    [Fact]
    public void Exact_denoiser_matches_the_score_by_finite_differences()
    {
        using var scope = NewDisposeScope();
        var g = TestUtil.SmallMixture();
        var den = new GaussianMixtureDenoiser(g, Linear);
        var x = tensor(new double[] { 0.3, -0.2, -1.1, 0.7 }, [2, 2]);
        var t = tensor(new double[] { 250, 600 });
        var eps = den.Predict(x, new ContinuousVp(Linear).StepsAtModelTimes([250, 600], x));
        for (int row = 0; row < 2; row++)
        {
            double ab = Linear.AlphasCumprod[(int)t[row].item<double>()];
            double a = Math.Sqrt(ab), s = Math.Sqrt(1 - ab);
            for (int d = 0; d < 2; d++)
            {
                double h = 1e-5;
                var xp = x[row].clone(); xp[d] += h;
                var xm = x[row].clone(); xm[d] -= h;
                double lp = g.LogDensity(xp.unsqueeze(0), tensor(a), tensor(s)).item<double>();
                double lm = g.LogDensity(xm.unsqueeze(0), tensor(a), tensor(s)).item<double>();
                double expected = -s * (lp - lm) / (2 * h);
                Assert.Equal(expected, eps[row, d].item<double>(), 6);
            }
        }
        // Real-valued time: ᾱ interpolated between integer steps (log α linear in t).
        var vp = new ContinuousVp(Linear);
        var mid = den.Predict(x.narrow(0, 0, 1), vp.StepAtModelTime(250.5, x.narrow(0, 0, 1)));
        double abMid = vp.AlphaBarAtStep(250.5);
        Assert.InRange(abMid, Linear.AlphasCumprod[251], Linear.AlphasCumprod[250]);
        var expectedMid = -Math.Sqrt(1 - abMid) * g.Score(x.narrow(0, 0, 1), tensor(Math.Sqrt(abMid)), tensor(Math.Sqrt(1 - abMid)));
        Assert.True(mid.allclose(expectedMid, rtol: 0, atol: 1e-12));
    }

    [Fact]
    public void Ddpm_with_T_steps_reproduces_the_mixture()
    {
        using var scope = NewDisposeScope();
        var g = TestUtil.SmallMixture();
        var den = new GaussianMixtureDenoiser(g, Linear);
        var gen = new Generator(11);
        const int n = 3000;
        var xT = randn([n, 2], dtype: ScalarType.Float64, generator: gen);
        var sampler = new DdpmSampler(Linear, Enumerable.Range(0, 1000).ToArray(), fixedLarge: false, clipDenoised: false);
        var x = sampler.Sample(den, xT, gen);

        var (mean, cov) = TestUtil.Moments(g);
        var m = TestUtil.Row(x.mean([0]));
        var c = x - x.mean([0], keepdim: true);
        var cv = TestUtil.Row(c.t().matmul(c) / (n - 1));
        for (int i = 0; i < 2; i++)
        {
            double se = Math.Sqrt(cov[i, i] / n);
            Assert.InRange(m[i], mean[i] - 4 * se, mean[i] + 4 * se);
            for (int j = 0; j < 2; j++)
            {
                double seCov = Math.Sqrt((cov[i, i] * cov[j, j] + cov[i, j] * cov[i, j]) / n) * 2; // kurtosis allowance
                Assert.InRange(cv[i * 2 + j], cov[i, j] - 4 * seCov, cov[i, j] + 4 * seCov);
            }
        }
        // Two-sample test against exact draws: MMD² within its permutation null range.
        var reference = g.Sample(800, gen);
        var (mmd2, p) = Mmd.PermutationTest(x.narrow(0, 0, 800), reference, 100, gen);
        Assert.True(p > 0.01, $"DDPM samples differ from the mixture: MMD² = {mmd2:G3}, permutation p = {p:G3}");
    }

    [Fact]
    public void Ddpm_fixed_large_also_reproduces_the_mean()
    {
        using var scope = NewDisposeScope();
        var g = TestUtil.SmallMixture();
        var den = new GaussianMixtureDenoiser(g, Linear);
        var gen = new Generator(5);
        var x = new DdpmSampler(Linear, Enumerable.Range(0, 1000).ToArray(), fixedLarge: true, clipDenoised: false)
            .Sample(den, randn([2000, 2], dtype: ScalarType.Float64, generator: gen), gen);
        var (mean, cov) = TestUtil.Moments(g);
        var m = TestUtil.Row(x.mean([0]));
        for (int i = 0; i < 2; i++) Assert.InRange(m[i], mean[i] - 4 * Math.Sqrt(cov[i, i] / 2000), mean[i] + 4 * Math.Sqrt(cov[i, i] / 2000));
    }

    [Fact]
    public void Ddim_eta0_is_deterministic_and_converges_with_steps()
    {
        using var scope = NewDisposeScope();
        var g = TestUtil.SmallMixture();
        var den = new GaussianMixtureDenoiser(g, Linear);
        var xT = randn([500, 2], dtype: ScalarType.Float64, generator: new Generator(2));
        Tensor Run(int steps, Generator? gen) =>
            new DdimSampler(Linear, Respacing.Timesteps("uniform", 1000, steps), 0.0, false).Sample(den, xT, gen);

        var a = Run(20, new Generator(1));
        var b = Run(20, new Generator(999));
        Assert.True(a.equal(b).all().item<bool>(), "DDIM η = 0 must not depend on the generator");

        var reference = Run(1000, null);
        var errors = new[] { 10, 20, 50, 100, 250 }.Select(s => (Run(s, null) - reference).pow(2).sum(1).sqrt().mean().item<double>()).ToArray();
        for (int i = 1; i < errors.Length; i++)
            Assert.True(errors[i] < errors[i - 1], $"error should fall with steps: {string.Join(", ", errors.Select(e => e.ToString("G3")))}");
        Assert.True(errors[^1] < 0.2 * errors[0], $"{string.Join(", ", errors.Select(e => e.ToString("G3")))}");
        // The 1000-step solve reproduces the mixture's mean (it transports the marginals).
        var (mean, cov) = TestUtil.Moments(g);
        var m = TestUtil.Row(reference.mean([0]));
        for (int i = 0; i < 2; i++) Assert.InRange(m[i], mean[i] - 4 * Math.Sqrt(cov[i, i] / 500), mean[i] + 4 * Math.Sqrt(cov[i, i] / 500));
    }

    [Fact]
    public void Ddim_with_eta1_and_T_steps_matches_ddpm_fixed_small()
    {
        // With η = 1 and every step, DDIM's σ equals the DDPM posterior standard deviation, so both
        // chains are the same Markov chain; from the same x_T and the same noise they coincide.
        using var scope = NewDisposeScope();
        var g = TestUtil.SmallMixture();
        var s = NoiseSchedule.Linear(100);
        var den = new GaussianMixtureDenoiser(g, s);
        var xT = randn([64, 2], dtype: ScalarType.Float64, generator: new Generator(4));
        var a = new DdimSampler(s, Enumerable.Range(0, 100).ToArray(), 1.0, false).Sample(den, xT, new Generator(8));
        var b = new DdpmSampler(s, Enumerable.Range(0, 100).ToArray(), false, false).Sample(den, xT, new Generator(8));
        Assert.True(a.allclose(b, rtol: 1e-9, atol: 1e-9), $"max diff {(a - b).abs().max().item<double>():G3}");
    }
}
