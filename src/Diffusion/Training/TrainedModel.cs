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
    public IDenoiser Denoiser => new NetworkDenoiser(Network, Parameterization.Parse(Config.Model.Prediction));
    public bool IsImage => ExampleShape.Length == 3;

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
        var net = ModelFactory.Create(cfg.Model, header.ExampleShape);
        Checkpoint.LoadModule(path, sections, weights, net);
        net.eval();
        return new TrainedModel { Path = path, Config = cfg, Schedule = schedule, Network = net, ExampleShape = header.ExampleShape, Step = header.Step };
    }

    public void Dispose() => Network.Dispose();
}
