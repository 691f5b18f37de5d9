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
    /// <summary>The denoiser samplers use (<see cref="CreateDenoiser"/> with seed 0).</summary>
    public IDenoiser Denoiser => CreateDenoiser(0);
    public bool IsImage => ExampleShape.Length == 3;

    /// <summary>
    /// The network as samplers must see it: time sharing applied to every time it is asked at when the
    /// run was trained with E-TSDM, and, for soft mixture denoising, fresh latents η drawn from a
    /// generator seeded with <paramref name="seed"/> (so deterministic samplers are deterministic given it).
    /// </summary>
    public IDenoiser CreateDenoiser(long seed) => Wrap(Config, Network, seed);

    /// <summary>See <see cref="CreateDenoiser"/>; for any network built from <paramref name="cfg"/>.</summary>
    public static IDenoiser Wrap(RunConfig cfg, DenoiserNetwork network, long seed)
    {
        if (network is SmdNetwork smd) smd.NoiseSource = new TorchSharp.torch.Generator((ulong)unchecked(seed * 7919 + 17));
        IDenoiser d = new NetworkDenoiser(network, Parameterization.Parse(cfg.Model.Prediction));
        var sharing = TimeSharing.From(cfg);
        return sharing is null ? d : new Sampling.TimeSharedDenoiser(d, sharing);
    }

    /// <summary>
    /// Loads a run folder or checkpoint file with its EMA weights (<paramref name="weights"/> = "ema",
    /// the default) or the raw training weights ("model"). The schedule is rebuilt from the saved
    /// config, so a checkpoint is never sampled with a schedule it was not trained with.
    /// </summary>
    public static TrainedModel Load(string runDirOrFile, string weights = "ema")
    {
        if (weights != "ema" && weights != "model") throw new UserError($"--weights {weights}: expected ema or model");
        string path = Checkpoint.Resolve(runDirOrFile);
        var (header, sections) = Checkpoint.Read(path);
        var cfg = header.RunConfig($"checkpoint {path}");
        var schedule = cfg.Schedule.Build();
        var net = ModelFactory.Create(cfg, header.ExampleShape);
        Checkpoint.LoadModule(path, sections, weights, net);
        net.eval();
        return new TrainedModel { Path = path, Config = cfg, Schedule = schedule, Network = net, ExampleShape = header.ExampleShape, Step = header.Step };
    }

    public void Dispose() => Network.Dispose();
}
