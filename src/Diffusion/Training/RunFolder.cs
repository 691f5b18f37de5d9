using Diffusion.Config;

namespace Diffusion.Training;

/// <summary>
/// The folder of a training run and the files the trainer keeps in it: <c>checkpoint.ckpt</c>,
/// <c>config.json</c> (the run's config, readable without the checkpoint), <c>log.jsonl</c> and the
/// sample grids of <c>train.sample-every</c> under <c>samples/</c>.
/// </summary>
public sealed class RunFolder
{
    public const string ConfigFile = "config.json";

    public string Dir { get; }
    public string CheckpointPath => Path.Combine(Dir, Checkpoint.FileName);
    public string LogPath => Path.Combine(Dir, RunLog.FileName);
    public string ConfigPath => Path.Combine(Dir, ConfigFile);

    private RunFolder(string dir) => Dir = dir;

    /// <summary>The grid written at <paramref name="step"/> during training.</summary>
    public string SamplesPath(long step) => Path.Combine(Dir, "samples", $"step-{step:D7}.png");

    /// <summary>A folder for a new run: refuses one that already holds a checkpoint, creates it otherwise.</summary>
    public static RunFolder CreateNew(string dir)
    {
        var f = new RunFolder(dir);
        if (File.Exists(f.CheckpointPath))
            throw new UserError($"--out {dir}: already holds a run ({Checkpoint.FileName}); pass --resume to continue it, or choose another --out");
        Directory.CreateDirectory(dir);
        return f;
    }

    /// <summary>The folder of a run to resume: it must hold a checkpoint.</summary>
    public static RunFolder Existing(string dir)
    {
        var f = new RunFolder(dir);
        if (!File.Exists(f.CheckpointPath)) throw new UserError($"--resume: {dir} holds no {Checkpoint.FileName} to continue");
        return f;
    }

    /// <summary>Starts a new run's files: its config as <c>config.json</c> and an empty log.</summary>
    public void WriteStart(RunConfig cfg)
    {
        Util.AtomicFile.WriteAllText(ConfigPath, ConfigLoader.ToJson(cfg));
        Util.AtomicFile.WriteAllText(LogPath, "");
    }

    /// <summary>Drops log entries after <paramref name="step"/> (see <see cref="RunLog.Truncate"/>).</summary>
    public void TruncateLog(long step) => RunLog.Truncate(LogPath, step);
}
