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
    Tensor Sample(IDenoiser model, Tensor xT, NoiseSource? gen, SamplerProgress? progress = null);
}

/// <summary>
/// An option of a sampler as users give it: <c>sample.KEY</c> in a config, <c>--KEY</c> on the command line
/// (a switch for yes/no options: <c>--KEY</c> and <c>--no-KEY</c>). Options the sample config has no property for are
/// kept in <see cref="SampleConfig.Options"/> and checked against <paramref name="Choices"/> or <paramref name="Check"/>.
/// </summary>
public sealed record SamplerOption(string Key, string Help, bool IsSwitch = false, string[]? Choices = null, Func<string, string?>? Check = null);

/// <summary>
/// A sampler as users name it, declared once: its name, one line of help, its options, its default number of steps
/// (given the schedule's T), its factory (config, schedule, whether x̂0 is clipped) and a one-line description of a config.
/// </summary>
public sealed record SamplerKind(string Name, string Help, IReadOnlyList<SamplerOption> Options, Func<int, int> DefaultSteps,
                                 Func<SampleConfig, NoiseSchedule, bool, ISampler> Create, Func<SampleConfig, string> Describe);

/// <summary>
/// The registry of samplers: adding one means writing its file (with its <see cref="SamplerKind"/>) and listing it here.
/// The config, the command line (flags, help, "applies to" checks) and the factories all read it.
/// </summary>
public static class Samplers
{
    public static readonly IReadOnlyList<SamplerKind> All = [DdpmSampler.Kind, DdimSampler.Kind, DpmSolver.Kind, KarrasSamplers.Euler, KarrasSamplers.Heun];

    public static IReadOnlyList<string> Names => All.Select(k => k.Name).ToList();

    /// <summary>The sampler called <paramref name="name"/>; an unknown name is a <see cref="ConfigException"/> listing the known ones.</summary>
    public static SamplerKind Get(string name) =>
        All.FirstOrDefault(k => k.Name == name) ?? throw new ConfigException($"sample.sampler: expected one of {string.Join(", ", Names)}, got '{name}'");

    /// <summary>Every option key, with the samplers it applies to, in registry order.</summary>
    public static IReadOnlyList<(SamplerOption Option, IReadOnlyList<string> Samplers)> AllOptions() =>
        All.SelectMany(k => k.Options.Select(o => (o, k.Name))).GroupBy(p => p.o.Key)
           .Select(g => (g.First().o, (IReadOnlyList<string>)g.Select(p => p.Name).ToList())).ToList();

    /// <summary>
    /// The sampler <paramref name="cfg"/> describes. x̂0 is clipped when <c>clip-denoised</c> says so, else when
    /// <paramref name="clipDefault"/> (images). Epsilon scaling is not a sampler but a layer of the denoiser
    /// (<see cref="DenoiserStack"/>), so it applies to every sampler alike.
    /// </summary>
    public static ISampler Create(SampleConfig cfg, NoiseSchedule schedule, bool clipDefault) =>
        Get(cfg.Sampler).Create(cfg, schedule, cfg.ClipDenoised ?? clipDefault);

    /// <summary>A one-line description of the sampler, e.g. "dpm-solver++ multistep order 2, 20 steps (time-uniform)".</summary>
    public static string Describe(SampleConfig cfg)
    {
        string d = Get(cfg.Sampler).Describe(cfg);
        return cfg.UsesEpsScaling() ? $"{d}, epsilon scaling {cfg.EpsScaleK}·t + {cfg.EpsScaleB}" : d;
    }

    /// <summary>Checks the sampler-specific options of <paramref name="cfg"/> kept in <see cref="SampleConfig.Options"/>.</summary>
    public static void ValidateOptions(SampleConfig cfg)
    {
        var kind = Get(cfg.Sampler);
        foreach (var (key, value) in cfg.Options ?? [])
        {
            var opt = kind.Options.FirstOrDefault(o => o.Key == key);
            if (opt is null)
            {
                var owners = AllOptions().FirstOrDefault(p => p.Option.Key == key).Samplers;
                throw new ConfigException(owners is null ? $"sample: unknown key 'sample.{key}'" : $"sample.{key}: applies to sampler {string.Join(" and ", owners)} only, not {kind.Name}");
            }
            string text = value.ToString();
            if (opt.Choices is not null && !opt.Choices.Contains(text))
                throw new ConfigException($"sample.{key}: expected one of {string.Join(", ", opt.Choices)}, got '{text}'");
            if (opt.Check?.Invoke(text) is string problem) throw new ConfigException($"sample.{key}: {problem}, got '{text}'");
        }
    }
}
