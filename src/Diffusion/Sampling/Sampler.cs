using Diffusion.Config;
using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;

namespace Diffusion.Sampling;

/// <summary>Reports sampling progress: (steps done, total steps).</summary>
public delegate void SamplerProgress(int done, int total);

/// <summary>A reverse-process sampler over an <see cref="IDenoiser"/>.</summary>
public interface ISampler
{
    /// <summary>Number of denoiser evaluations one call of <see cref="Sample"/> makes.</summary>
    int Evaluations { get; }

    /// <summary>
    /// Runs the reverse process from x_T (any dtype; the computation keeps it) and returns the final
    /// samples. Stochastic samplers draw their noise from <paramref name="gen"/>; deterministic ones
    /// draw nothing.
    /// </summary>
    Tensor Sample(IDenoiser model, Tensor xT, Generator? gen, SamplerProgress? progress = null);
}

/// <summary>Builds samplers from names and options.</summary>
public static class Samplers
{
    public static readonly string[] Names = ["ddpm", "ddim"];

    public static ISampler Create(SampleConfig cfg, NoiseSchedule schedule, bool clipDefault)
    {
        cfg.Validate();
        var timesteps = Respacing.Timesteps(cfg.Spacing, schedule.T, cfg.Steps);
        bool clip = cfg.ClipDenoised ?? clipDefault;
        return cfg.Sampler switch
        {
            "ddpm" => new DdpmSampler(schedule, timesteps, cfg.Variance == "fixed-large", clip),
            "ddim" => new DdimSampler(schedule, timesteps, cfg.Eta, clip),
            _ => throw new UserError($"--sampler {cfg.Sampler}: expected one of {string.Join(", ", Names)}"),
        };
    }

    internal static Tensor Scalar(double v, Tensor like) => tensor(v, dtype: like.dtype, device: like.device);
}
