using Diffusion.Config;

namespace Diffusion.Training;

/// <summary>
/// The folder of a training run and the files the trainer keeps in it: <c>checkpoint.ckpt</c> and the previous
/// checkpoints <c>train.keep-checkpoints</c> keeps (<c>checkpoint.prev.ckpt</c>, or <c>checkpoint.step-NNNNNNN.ckpt</c>),
/// <c>config.json</c> (the run's config, readable without the checkpoint), <c>log.jsonl</c>, the sample grids of
/// <c>train.sample-every</c> under <c>samples/</c>, and <c>train.lock</c> while a trainer runs (<see cref="RunLock"/>).
/// </summary>
public sealed class RunFolder
{
    public const string ConfigFile = "config.json";
    public const string PrevCheckpointFile = "checkpoint.prev.ckpt";
    /// <summary>The <c>--resume-from</c> value naming the newest kept previous checkpoint.</summary>
    public const string Prev = "prev";

    public string Dir { get; }
    public string CheckpointPath => Path.Combine(Dir, Checkpoint.FileName);
    public string LogPath => Path.Combine(Dir, RunLog.FileName);
    public string ConfigPath => Path.Combine(Dir, ConfigFile);

    private RunFolder(string dir) => Dir = dir;

    public string PrevCheckpointPath => Path.Combine(Dir, PrevCheckpointFile);

    /// <summary>Where a previous checkpoint of step <paramref name="step"/> is kept when more than one is kept.</summary>
    public string StepCheckpointPath(long step) => Path.Combine(Dir, $"checkpoint.step-{step:D7}.ckpt");

    /// <summary>The kept previous checkpoints, newest first (the step files, then <c>checkpoint.prev.ckpt</c>).</summary>
    public IReadOnlyList<string> KeptCheckpoints()
    {
        var kept = StepCheckpoints().ToList();
        if (File.Exists(PrevCheckpointPath)) kept.Add(PrevCheckpointPath);
        return kept;
    }

    /// <summary>
    /// The name under which the current checkpoint (of step <paramref name="currentStep"/>; null when it is not this
    /// trainer's to keep) is kept when a new one replaces it, for <c>train.keep-checkpoints</c> = <paramref name="keep"/>.
    /// </summary>
    public string? KeepPreviousAs(int keep, long? currentStep) =>
        keep == 0 || currentStep is not long s ? null : keep == 1 ? PrevCheckpointPath : StepCheckpointPath(s);

    /// <summary>Deletes the step checkpoints beyond the newest <paramref name="keep"/> (when more than one is kept).</summary>
    public void PruneKept(int keep)
    {
        if (keep <= 1) return;
        foreach (var old in StepCheckpoints().Skip(keep))
            File.Delete(old);
    }

    // The kept step checkpoints, newest first (their names sort by step).
    private IEnumerable<string> StepCheckpoints() =>
        Directory.Exists(Dir) ? Directory.GetFiles(Dir, "checkpoint.step-*.ckpt").OrderByDescending(f => f, StringComparer.Ordinal) : [];

    /// <summary>
    /// The checkpoint a resumed run continues from: the latest (<paramref name="from"/> null), the newest kept previous one
    /// (<c>prev</c>), or a checkpoint file.
    /// </summary>
    public string ResumePath(string? from)
    {
        if (from is null)
        {
            if (File.Exists(CheckpointPath)) return CheckpointPath;
            var kept = KeptCheckpoints();
            throw new UserError($"--resume: {Dir} holds no {Checkpoint.FileName} to continue" + (kept.Count > 0 ? $"; continue from the previous checkpoint with --resume-from {Prev} ({Path.GetFileName(kept[0])})" : ""));
        }
        if (from == Prev)
        {
            var kept = KeptCheckpoints();
            if (kept.Count == 0) throw new UserError($"--resume-from {Prev}: {Dir} keeps no previous checkpoint (train.keep-checkpoints was 0, or the run saved only once)");
            return kept[0];
        }
        if (!File.Exists(from)) throw new UserError($"--resume-from {from}: no such checkpoint file (give {Prev} or a .ckpt file)");
        return from;
    }

    /// <summary>
    /// Opens the checkpoint to resume from with <paramref name="open"/>; a damaged latest checkpoint is one line that
    /// offers <c>--resume-from prev</c> when a previous one is kept.
    /// </summary>
    public T OpenForResume<T>(string? from, Func<string, T> open)
    {
        string path = ResumePath(from);
        try { return open(path); }
        catch (CheckpointDamagedError e) when (from is null)
        {
            var kept = KeptCheckpoints();
            throw new UserError($"--resume: {e.Message}; " + (kept.Count > 0
                ? $"continue from the previous checkpoint with --resume-from {Prev} ({Path.GetFileName(kept[0])})"
                : "no previous checkpoint is kept to continue from"));
        }
    }

    /// <summary>The grid written at <paramref name="step"/> during training.</summary>
    public string SamplesPath(long step) => Path.Combine(Dir, "samples", $"step-{step:D7}.png");

    /// <summary>A folder for a new run: refuses one that already holds a checkpoint, creates it otherwise.</summary>
    public static RunFolder CreateNew(string dir)
    {
        var f = new RunFolder(dir);
        f.ThrowIfHoldsRun();
        Directory.CreateDirectory(dir);
        return f;
    }

    /// <summary>Refuses a folder that holds a run's checkpoint (a new run must not overwrite it).</summary>
    public void ThrowIfHoldsRun()
    {
        if (File.Exists(CheckpointPath))
            throw new UserError($"--out {Dir}: already holds a run ({Checkpoint.FileName}); pass --resume to continue it, or choose another --out");
    }

    /// <summary>Removes the temporary files of checkpoint saves a kill interrupted (<c>*.tmp-*</c>); call it holding the run's lock.</summary>
    public void RemoveTemporaryFiles()
    {
        foreach (var f in Directory.EnumerateFiles(Dir, "*.tmp-*"))
            try { File.Delete(f); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>The folder of a run to resume: it must hold a checkpoint (the latest or a kept previous one).</summary>
    public static RunFolder Existing(string dir)
    {
        var f = new RunFolder(dir);
        if (!File.Exists(f.CheckpointPath) && f.KeptCheckpoints().Count == 0) throw new UserError($"--resume: {dir} holds no {Checkpoint.FileName} to continue");
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
