using Diffusion.Schedules;

namespace Diffusion.Tests;

public class ScheduleTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(99)]
    [InlineData(499)]
    [InlineData(999)]
    public void Linear_schedule_matches_closed_form(int t)
    {
        var s = NoiseSchedule.Linear(1000);
        double beta(int i) => 1e-4 + (0.02 - 1e-4) * i / 999.0;
        Assert.Equal(beta(t), s.Betas[t], 15);
        double ab = 1;
        for (int i = 0; i <= t; i++) ab *= 1 - beta(i);
        Assert.Equal(ab, s.AlphasCumprod[t], 12);
        Assert.Equal(ab / (1 - ab), s.Snr[t], 9);
        double abPrev = t == 0 ? 1 : ab / (1 - beta(t));
        Assert.Equal(abPrev, s.AlphasCumprodPrev[t], 12);
        // Posterior q(x_{t-1} | x_t, x0)
        Assert.Equal(beta(t) * (1 - abPrev) / (1 - ab), s.PosteriorVariance[t], 12);
        Assert.Equal(Math.Sqrt(abPrev) * beta(t) / (1 - ab), s.PosteriorMeanCoefX0[t], 12);
        Assert.Equal(Math.Sqrt(1 - beta(t)) * (1 - abPrev) / (1 - ab), s.PosteriorMeanCoefXt[t], 12);
    }

    [Fact]
    public void Linear_schedule_scales_with_T()
    {
        var s = NoiseSchedule.Linear(250);
        Assert.Equal(4e-4, s.Betas[0], 15);
        Assert.Equal(0.08, s.Betas[^1], 15);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(10)]
    [InlineData(500)]
    [InlineData(990)]
    [InlineData(999)]
    public void Cosine_schedule_matches_closed_form(int t)
    {
        const int T = 1000;
        var s = NoiseSchedule.Cosine(T);
        double f(double u) => Math.Pow(Math.Cos((u / T + 0.008) / 1.008 * Math.PI / 2), 2);
        double expectedBeta = Math.Min(1 - f(t + 1) / f(t), 0.999);
        Assert.Equal(expectedBeta, s.Betas[t], 12);
        if (t < 990) // before clipping bites, ᾱ_t = f(t+1)/f(0)
            Assert.Equal(f(t + 1) / f(0), s.AlphasCumprod[t], 10);
    }

    [Fact]
    public void Posterior_mean_is_the_exact_gaussian_conditional()
    {
        // q(x_{t-1} | x_t, x0) from Bayes with q(x_t | x_{t-1}) = N(√α x_{t-1}, β) and q(x_{t-1} | x0) = N(√ᾱ' x0, 1−ᾱ').
        var s = NoiseSchedule.Cosine(100);
        foreach (int t in new[] { 1, 5, 50, 99 })
        {
            double a = s.Alphas[t], b = s.Betas[t], abp = s.AlphasCumprodPrev[t];
            double precision = a / b + 1 / (1 - abp);
            double variance = 1 / precision;
            double coefXt = Math.Sqrt(a) / b * variance;
            double coefX0 = Math.Sqrt(abp) / (1 - abp) * variance;
            Assert.Equal(variance, s.PosteriorVariance[t], 12);
            Assert.Equal(coefXt, s.PosteriorMeanCoefXt[t], 10);
            Assert.Equal(coefX0, s.PosteriorMeanCoefX0[t], 10);
        }
    }

    [Fact]
    public void Respacing_keeps_alpha_bar_at_the_chosen_steps()
    {
        var s = NoiseSchedule.Linear(1000);
        var steps = Respacing.Timesteps("ddim-stride", 1000, 50);
        var r = s.Respace(steps);
        Assert.Equal(50, r.T);
        for (int i = 0; i < r.T; i++)
        {
            Assert.Equal(steps[i], r.TimestepMap[i]);
            Assert.Equal(s.AlphasCumprod[steps[i]], r.AlphasCumprod[i], 12);
        }
    }

    [Fact]
    public void Spacings_give_the_documented_steps()
    {
        Assert.Equal(Enumerable.Range(0, 50).Select(i => 20 * i), Respacing.Timesteps("ddim-stride", 1000, 50));
        // 1000 steps into 30: range(0, 1000, 34) has 30 values — the smallest such stride.
        Assert.Equal(Enumerable.Range(0, 30).Select(i => 34 * i), Respacing.Timesteps("ddim-stride", 1000, 30));
        var u = Respacing.Timesteps("uniform", 1000, 10);
        Assert.Equal(new[] { 0, 111, 222, 333, 444, 555, 666, 777, 888, 999 }, u);
        var q = Respacing.Timesteps("quadratic", 1000, 5);
        double top = Math.Sqrt(800);
        Assert.Equal(Enumerable.Range(0, 5).Select(i => (int)Math.Pow(top * i / 4, 2)), q);
        var e = Assert.Throws<UserError>(() => Respacing.Timesteps("ddim-stride", 1000, 999));
        Assert.Contains("no integer stride", e.Message);
        Assert.Throws<UserError>(() => Respacing.Timesteps("uniform", 100, 101));
        Assert.Throws<UserError>(() => Respacing.Timesteps("nope", 100, 10));
    }

    [Fact]
    public void Continuous_view_passes_through_alpha_bar_and_inverts_lambda()
    {
        foreach (var s in new[] { NoiseSchedule.Linear(1000), NoiseSchedule.Cosine(1000) })
        {
            var vp = new ContinuousVp(s);
            for (int n = 0; n < s.T; n += 37)
            {
                Assert.Equal(s.AlphasCumprod[n], vp.AlphaBarAtStep(n), 13);
                Assert.Equal(n, vp.ModelTime(vp.TimeOfStep(n)), 9);
            }
            Assert.Equal(0.5 * Math.Log(s.AlphasCumprod[^1]), vp.LogAlpha(1.0), 13);
            // Between grid points log α is linear in t.
            double t0 = vp.TimeOfStep(100), t1 = vp.TimeOfStep(101);
            Assert.Equal(0.5 * (vp.LogAlpha(t0) + vp.LogAlpha(t1)), vp.LogAlpha(0.5 * (t0 + t1)), 13);
            foreach (double t in new[] { 0.002, 0.05, 0.3, 0.71, 0.95, 0.999 })
            {
                double a = vp.Alpha(t), sg = vp.Sigma(t);
                Assert.Equal(1.0, a * a + sg * sg, 12);
                Assert.Equal(Math.Log(a) - Math.Log(sg), vp.Lambda(t), 10);
                Assert.Equal(t, vp.InverseLambda(vp.Lambda(t)), 9);
            }
        }
    }
}
