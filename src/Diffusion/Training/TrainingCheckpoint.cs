using Diffusion.Config;
using Diffusion.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Diffusion.Training;

/// <summary>
/// The whole state of a training run in its checkpoint: model, EMA and optimizer, the step, the
/// training wall time so far, the config, and both random streams — the training generator (t, noise,
/// flips, SMD's η) and libtorch's global one (dropout) — so that a resumed run draws exactly what an
/// uninterrupted one would.
/// </summary>
public sealed class TrainingCheckpoint
{
    private readonly string path;
    private readonly CheckpointHeader header;
    private readonly Dictionary<string, byte[]> sections;

    /// <summary>Optimisation steps the saved run had taken.</summary>
    public long Step => header.Step;
    /// <summary>Training wall time of the saved run, seconds.</summary>
    public double ElapsedSeconds => header.ElapsedSeconds;

    private TrainingCheckpoint(string path, CheckpointHeader header, Dictionary<string, byte[]> sections)
    {
        this.path = path;
        this.header = header;
        this.sections = sections;
    }

    /// <summary>
    /// Saves the state atomically to <paramref name="path"/>; with <paramref name="keepPreviousAs"/> the checkpoint it
    /// replaces is kept under that name.
    /// </summary>
    public static void Save(string path, RunConfig cfg, long[] exampleShape, Schedules.NoiseSchedule schedule, long step, double elapsedSeconds,
                            Generator gen, DenoiserNetwork model, Ema ema, AdamW optimizer, string? keepPreviousAs = null)
    {
        using var g = gen.get_state();
        using var r = torch.random.get_rng_state();
        var header = new CheckpointHeader
        {
            Config = ConfigLoader.ToTree(cfg),
            ExampleShape = exampleShape,
            Step = step,
            GeneratorState = Convert.ToBase64String(g.data<byte>().ToArray()),
            GlobalRngState = Convert.ToBase64String(r.data<byte>().ToArray()),
            ScheduleFingerprint = schedule.Fingerprint,
            ElapsedSeconds = elapsedSeconds,
        };
        Checkpoint.Save(path, header, model, ema.Shadow, optimizer, keepPreviousAs);
    }

    /// <summary>
    /// Reads a checkpoint to resume from; refuses one trained on examples of another shape than the data's, or with
    /// a schedule other than <paramref name="schedule"/> (the one its config rebuilds).
    /// </summary>
    public static TrainingCheckpoint Open(string path, long[] dataExampleShape, Schedules.NoiseSchedule schedule)
    {
        var (header, sections) = Checkpoint.Read(path);
        header.CheckSchedule(schedule, path);
        if (!header.ExampleShape.SequenceEqual(dataExampleShape))
            throw new UserError($"--resume: the checkpoint was trained on examples of shape [{string.Join(", ", header.ExampleShape)}], the data has [{string.Join(", ", dataExampleShape)}]");
        return new TrainingCheckpoint(path, header, sections);
    }

    /// <summary>
    /// Loads the saved weights and optimizer state into freshly built objects and restores both random
    /// streams (after building, which reseeds the global one).
    /// </summary>
    public void Restore(DenoiserNetwork model, Ema ema, AdamW optimizer, Generator gen)
    {
        Checkpoint.LoadModule(path, sections, "model", model);
        Checkpoint.LoadModule(path, sections, "ema", ema.Shadow);
        Checkpoint.LoadOptimizer(path, sections, optimizer);
        using (var g = tensor(Convert.FromBase64String(header.GeneratorState), dtype: ScalarType.Byte)) gen.set_state(g);
        using (var g = tensor(Convert.FromBase64String(header.GlobalRngState), dtype: ScalarType.Byte)) torch.random.set_rng_state(g);
    }
}
