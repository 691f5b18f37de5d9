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
    public static readonly string[] Names = ["ddpm", "ddim", "dpm-solver"];

    /// <summary>
    /// The sampler <paramref name="cfg"/> describes, wrapped in epsilon scaling when it is on. x̂0 is clipped
    /// when <c>clip-denoised</c> says so, else when <paramref name="clipDefault"/> (images) — except for
    /// dpm-solver's noise form, which never clips.
    /// </summary>
    public static ISampler Create(SampleConfig cfg, NoiseSchedule schedule, bool clipDefault)
    {
        cfg.Validate();
        bool clip = cfg.ClipDenoised ?? clipDefault;
        ISampler s = cfg.Sampler switch
        {
            "ddpm" => new DdpmSampler(schedule, Respacing.Timesteps(cfg.Spacing, schedule.T, cfg.Steps), cfg.Variance == "fixed-large", clip),
            "ddim" => new DdimSampler(schedule, Respacing.Timesteps(cfg.Spacing, schedule.T, cfg.Steps), cfg.Eta, clip),
            "dpm-solver" => new DpmSolver(schedule, cfg.Steps, cfg.Order, cfg.Algorithm, cfg.Method, cfg.Skip, cfg.LowerOrderFinal, cfg.DenoiseToZero,
                                          clip && cfg.Algorithm == "dpmsolver++"),
            _ => throw new UserError($"--sampler {cfg.Sampler}: expected one of {string.Join(", ", Names)}"),
        };
        return cfg.UsesEpsScaling() ? new EpsilonScaledSampler(s, schedule, cfg.EpsScaleB, cfg.EpsScaleK) : s;
    }

    /// <summary>A one-line description of the sampler, e.g. "dpm-solver++ multistep order 2, 20 steps (time-uniform)".</summary>
    public static string Describe(SampleConfig cfg)
    {
        string d = cfg.Sampler switch
        {
            "ddpm" => $"ddpm {cfg.Steps} steps ({cfg.Spacing}, {cfg.Variance})",
            "ddim" => $"ddim {cfg.Steps} steps ({cfg.Spacing}, eta {cfg.Eta})",
            _ => $"{(cfg.Algorithm == "dpmsolver++" ? "dpm-solver++" : "dpm-solver")} {cfg.Method} order {cfg.Order}, {cfg.Steps} steps ({cfg.Skip}{(cfg.DenoiseToZero ? ", denoise to zero" : "")})",
        };
        return cfg.UsesEpsScaling() ? $"{d}, epsilon scaling {cfg.EpsScaleK}·t + {cfg.EpsScaleB}" : d;
    }

    internal static Tensor Scalar(double v, Tensor like) => tensor(v, dtype: like.dtype, device: like.device);
}
