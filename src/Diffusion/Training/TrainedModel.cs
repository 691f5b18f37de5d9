using Diffusion.Config;
using Diffusion.Models;
using Diffusion.Schedules;

namespace Diffusion.Training;

/// <summary>A trained network loaded from a checkpoint for sampling or evaluation, with the config it was trained under.</summary>
public sealed class TrainedModel : IDisposable
{
    public required string Path { get; init; }
    public required RunConfig Config { get; init; }
    public required NoiseSchedule Schedule { get; init; }
    public required DenoiserNetwork Network { get; init; }
    public required long[] ExampleShape { get; init; }
    public required long Step { get; init; }
    public bool IsImage => ExampleShape.Length == 3;

    /// <summary>
    /// The network as samplers must see it (<see cref="Sampling.DenoiserStack.ForSampling(RunConfig, DenoiserNetwork, long, SampleConfig?)"/>): time sharing applied
    /// to every time it is asked at when the run was trained with E-TSDM; for soft mixture denoising, fresh latents η
    /// from a generator of its own seeded with <paramref name="seed"/> (so deterministic samplers are deterministic
    /// given it); epsilon scaling when <paramref name="sampling"/> asks for it. The caller disposes it.
    /// </summary>
    public IDenoiser CreateDenoiser(long seed, SampleConfig? sampling = null) => Sampling.DenoiserStack.ForSampling(Config, Network, seed, sampling);

    /// <summary>As <see cref="CreateDenoiser(long, SampleConfig?)"/>, with SMD's η from a run's per-sample noise source (not owned).</summary>
    public IDenoiser CreateDenoiser(Sampling.NoiseSource perSample, SampleConfig? sampling = null) => Sampling.DenoiserStack.ForSampling(Config, Network, perSample, sampling);

    /// <summary>
    /// Loads a run folder or checkpoint file with its EMA weights (<paramref name="weights"/> = "ema",
    /// the default) or the raw training weights ("model"). The schedule is rebuilt from the saved
    /// config and checked against the fingerprint the checkpoint stores, so a checkpoint is never sampled with a
    /// schedule it was not trained with.
    /// </summary>
    public static TrainedModel Load(string runDirOrFile, string weights = "ema")
    {
        if (weights != "ema" && weights != "model") throw new UserError($"--weights {weights}: expected ema or model");
        string path = Checkpoint.Resolve(runDirOrFile);
        var (header, sections) = Checkpoint.Read(path);
        var cfg = header.RunConfig($"checkpoint {path}");
        var schedule = cfg.Schedule.Build();
        header.CheckSchedule(schedule, path);
        if (header.ExampleShape is not ({ Length: 1 } or { Length: 3 }) || header.ExampleShape.Any(s => s < 1))
            throw new UserError($"checkpoint {path}: example shape [{string.Join(", ", header.ExampleShape ?? [])}]; expected [D] or [C, H, W]");
        DenoiserNetwork net;
        try { net = ModelFactory.Create(cfg, header.ExampleShape); }
        catch (UserError e) { throw new UserError($"checkpoint {path}: {e.Message}"); }
        try { Checkpoint.LoadModule(path, sections, weights, net); }
        catch { net.Dispose(); throw; }
        net.eval();
        return new TrainedModel { Path = path, Config = cfg, Schedule = schedule, Network = net, ExampleShape = header.ExampleShape, Step = header.Step };
    }

    public void Dispose() => Network.Dispose();
}
