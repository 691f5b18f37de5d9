using Diffusion.Models;
using Diffusion.Schedules;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Tests;

internal static class TestUtil
{
    /// <summary>A fresh empty folder under the system temp directory.</summary>
    public static string TempDir(string name)
    {
        var d = Path.Combine(Path.GetTempPath(), "diffusion-tests", $"{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(d);
        return d;
    }

    /// <summary>Flips (XOR 0xFF) <paramref name="n"/> bytes in the middle of a checkpoint section, as a damaged disk would.</summary>
    public static void DamageSection(string checkpointPath, string section, int n = 64)
    {
        var data = Diffusion.Training.Checkpoint.Read(checkpointPath).Sections[section];
        var bytes = File.ReadAllBytes(checkpointPath);
        int at = bytes.AsSpan().IndexOf(data);
        if (at < 0 || data.Length < n) throw new InvalidOperationException($"section {section} not found");
        int start = at + data.Length / 2 - n / 2;
        for (int i = start; i < start + n; i++) bytes[i] ^= 0xFF;
        File.WriteAllBytes(checkpointPath, bytes);
    }

    /// <summary>A 2-D, three-component mixture with unequal weights and spreads.</summary>
    public static GaussianMixture SmallMixture() => new(
        [0.5, 0.3, 0.2],
        [[-1.0, 0.5], [1.0, 1.0], [0.5, -1.2]],
        [0.3, 0.2, 0.4]);

    /// <summary>Exact mean and covariance of an isotropic mixture.</summary>
    public static (double[] Mean, double[,] Cov) Moments(GaussianMixture g)
    {
        int d = g.Dim;
        var mean = new double[d];
        for (int k = 0; k < g.Components; k++)
            for (int i = 0; i < d; i++) mean[i] += g.Weights[k] * g.Means[k][i];
        var cov = new double[d, d];
        for (int k = 0; k < g.Components; k++)
            for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++)
                    cov[i, j] += g.Weights[k] * ((g.Means[k][i] - mean[i]) * (g.Means[k][j] - mean[j]) + (i == j ? g.Stds[k] * g.Stds[k] : 0));
        return (mean, cov);
    }

    /// <summary>Repeated sampling leaves no tensor alive: the live count after three runs equals the one after a warm-up run.</summary>
    public static void AssertSamplingLeaksNothing(Diffusion.Sampling.ISampler sampler, IDenoiser denoiser, Tensor xT)
    {
        sampler.Sample(denoiser, xT, null).Dispose();
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 3; i++) sampler.Sample(denoiser, xT, null).Dispose();
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    public static double[] Row(Tensor t) => t.to_type(ScalarType.Float64).cpu().data<double>().ToArray();
}
