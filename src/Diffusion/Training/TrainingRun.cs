using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Diffusion.Config;
using Diffusion.Data;
using Diffusion.Sampling;
using static TorchSharp.torch;

namespace Diffusion.Training;

/// <summary>What a user asks of a new run: a config (file or built-in name) or a data spec to pick one, then remedies, <c>--set</c> assignments and the common overrides.</summary>
public sealed record TrainRequest
{
    /// <summary>A .json/.toml file or a built-in config name; null to pick the built-in default for <see cref="Data"/>.</summary>
    public string? Config { get; init; }
    /// <summary>Comma-separated remedy lists, applied before <see cref="Sets"/>.</summary>
    public IReadOnlyList<string> Remedies { get; init; } = [];
    public IReadOnlyList<string> Sets { get; init; } = [];
    public string? Data { get; init; }
    public string? DataDir { get; init; }
    public int? Steps { get; init; }
    public long? Seed { get; init; }
    /// <summary>A safetensors file (<c>diffusion export</c>) the model and EMA start from; recorded as <c>train.init-weights</c> (full path).</summary>
    public string? InitWeights { get; init; }
}

/// <summary>Progress callbacks of <see cref="TrainingRun.Execute"/>.</summary>
public sealed record TrainingCallbacks
{
    /// <summary>Informational lines (what is trained, remedies, notes, where a resumed run continues).</summary>
    public Action<string>? Message { get; init; }
    public Action<TrainProgress>? Training { get; init; }
    public SamplerProgress? Sampling { get; init; }
}

/// <summary>
/// The library side of <c>diffusion train</c>: the config of a new or resumed run, the run folder's preparation, and
/// the whole run — training, the loss plot, the EMA samples (<c>samples.png</c>, <c>samples.npy</c>) and
/// <c>metrics.json</c>. The command line parses flags into a <see cref="TrainRequest"/>, calls these and prints.
/// </summary>
public static class TrainingRun
{
    /// <summary>The config of a new run: a file or built-in config (or the default for the data), then remedies, <c>--set</c>, data, data-dir, steps and seed; validated once.</summary>
    public static RunConfig NewConfig(TrainRequest r)
    {
        JsonObject tree;
        string origin;
        if (r.Config is string configArg)
        {
            tree = ConfigTree(configArg);
            origin = configArg;
        }
        else if (r.Data is string data)
        {
            string name = DataKinds.DefaultConfigName(data);
            tree = ConfigLoader.EmbeddedTree(name);
            origin = $"built-in config {name}";
        }
        else throw new UserError("give --config FILE (or a built-in name: demo, toy, image28, image32) or --data SPEC");

        foreach (var list in r.Remedies)
            foreach (var set in Training.Remedies.Presets(list)) ConfigLoader.ApplySet(tree, set);
        foreach (var s in r.Sets) ConfigLoader.ApplySet(tree, s);
        if (r.Data is not null) ConfigLoader.ApplySet(tree, "data.spec=" + JsonSerializer.Serialize(r.Data));
        if (r.DataDir is not null) ConfigLoader.ApplySet(tree, "data.data-dir=" + JsonSerializer.Serialize(r.DataDir));
        if (r.Steps is int steps) ConfigLoader.ApplySet(tree, $"train.steps={steps}");
        if (r.Seed is long seed) ConfigLoader.ApplySet(tree, $"train.seed={seed}");
        if (r.InitWeights is string init)
        {
            if (!File.Exists(init)) throw new UserError($"--init-weights {init}: file not found");
            ConfigLoader.ApplySet(tree, "train.init-weights=" + JsonSerializer.Serialize(Path.GetFullPath(init)));
        }
        return ConfigLoader.FromTree(tree, origin);
    }

    /// <summary>The tree of <c>--config</c>: a .json/.toml file, or a built-in config name.</summary>
    public static JsonObject ConfigTree(string configArg)
    {
        bool looksLikeFile = configArg.Contains('/') || configArg.Contains('\\') || configArg.EndsWith(".toml") || configArg.EndsWith(".json");
        return looksLikeFile || File.Exists(configArg) ? ConfigLoader.FileTree(configArg) : ConfigLoader.EmbeddedTree(configArg);
    }

    /// <summary>The saved config of the run in <paramref name="runDir"/>, with the settings a resumed run may change (total steps, data folder).</summary>
    public static RunConfig ResumeConfig(string runDir, int? steps, string? dataDir) => ResumeConfig(runDir, new TrainRequest { Steps = steps, DataDir = dataDir });

    /// <summary>
    /// The saved config of the run in <paramref name="runDir"/> (its latest checkpoint, or the one
    /// <paramref name="resumeFrom"/> names: see <see cref="RunFolder.ResumePath"/>), with the settings a resumed run may
    /// change (total steps, data folder). The request's config, remedies, <c>--set</c>s, data and seed may repeat the
    /// saved values; one that would change a key is refused naming it (see <see cref="ResumeCheck"/>).
    /// </summary>
    public static RunConfig ResumeConfig(string runDir, TrainRequest r, string? resumeFrom = null)
    {
        var folder = RunFolder.Existing(runDir);
        RunLock.ThrowIfHeld(runDir);
        var header = folder.OpenForResume(resumeFrom, Checkpoint.ReadHeader);
        var tree = header.Config;
        ResumeCheck.Unchanged(r, tree, $"checkpoint in {runDir}");
        // --set on a key a resumed run may change (train.steps, data.data-dir, train.threads) takes effect, before the flags.
        foreach (var set in r.Sets)
            if (ResumeCheck.MayChange.Contains(ResumeCheck.KeyOf(set))) ConfigLoader.ApplySet(tree, set);
        if (r.Steps is int st) ConfigLoader.ApplySet(tree, $"train.steps={st}");
        if (r.DataDir is not null) tree["data"]!["data-dir"] = r.DataDir;
        return ConfigLoader.FromTree(tree, $"checkpoint in {runDir}");
    }

    /// <summary>runs/&lt;data&gt;-&lt;local time&gt;.</summary>
    public static string DefaultRunDir(RunConfig cfg)
    {
        string safe = new string(cfg.Data.Spec.Select(c => char.IsLetterOrDigit(c) || c == '-' ? c : '-').ToArray()).Trim('-');
        return Path.Combine("runs", $"{(safe.Length > 0 ? safe[..Math.Min(safe.Length, 40)] : "run")}-{DateTime.Now:yyyyMMdd-HHmmss}");
    }

    /// <summary>
    /// Readies <paramref name="runDir"/> for a new run: with <paramref name="force"/> an earlier run there is deleted (a
    /// folder that does not look like a run folder is refused); without it, a folder holding a run is refused.
    /// </summary>
    public static void PrepareNew(string runDir, bool force)
    {
        if (force && Directory.Exists(runDir))
        {
            RunLock.ThrowIfHeld(runDir);
            if (!File.Exists(Path.Combine(runDir, Checkpoint.FileName)) && Directory.EnumerateFileSystemEntries(runDir).Any() && !File.Exists(Path.Combine(runDir, RunFolder.ConfigFile)))
                throw new UserError($"--force would delete {runDir}, which does not look like a run folder; remove it yourself");
            Directory.Delete(runDir, recursive: true);
        }
        RunLock.ThrowIfHeld(runDir);
        if (File.Exists(Path.Combine(runDir, Checkpoint.FileName)))
            throw new UserError($"--out {runDir} already holds a run ({Checkpoint.FileName}); pass --resume to continue it, --force to start over, or choose another --out");
    }

    /// <summary>
    /// Trains (or resumes) the run in <paramref name="runDir"/> to <c>train.steps</c>, then writes <c>loss.png</c>, the EMA
    /// samples (<c>samples.png</c>, <c>samples.npy</c>) and <c>metrics.json</c>; returns the summary it wrote.
    /// </summary>
    /// <param name="cfg">The validated config of the run (from <see cref="NewConfig"/>, or <see cref="ResumeConfig(string, TrainRequest, string?)"/> when resuming).</param>
    /// <param name="runDir">The run folder; for a new run, readied by <see cref="PrepareNew"/>.</param>
    /// <param name="resume">Continue the run in <paramref name="runDir"/> from its checkpoint instead of starting one.</param>
    /// <param name="callbacks">Messages and training/sampling progress (null: silent).</param>
    /// <param name="resumeFrom">With <paramref name="resume"/>: null for the latest checkpoint, <c>prev</c> or a checkpoint file.</param>
    public static RunSummary Execute(RunConfig cfg, string runDir, bool resume, TrainingCallbacks? callbacks = null, string? resumeFrom = null)
    {
        var say = callbacks?.Message;
        // The data first: a missing or damaged data file is the one error line, before the run says anything.
        using var data = DataSources.Load(cfg.Data);
        ClassConditioning.CheckData(cfg, data); // and labels that cannot train the model asked for
        var remedies = cfg.ActiveRemedies();
        say?.Invoke($"train: data {cfg.Data.Spec}, model {cfg.Model.Type} ({cfg.Model.Prediction}), schedule {cfg.Schedule.Name} T={cfg.Schedule.Length}, {cfg.Train.Steps} steps of batch {cfg.Train.BatchSize}, seed {cfg.Train.Seed}, {get_num_threads()} threads → {runDir}");
        say?.Invoke($"train: remedies: {(remedies.Count == 0 ? "none (baseline)" : string.Join(", ", remedies))}");
        if (cfg.Model.Conditional)
            say?.Invoke($"train: class-conditional, {cfg.Model.NumClasses} classes{(cfg.Model.ClassNames is { } n ? $" ({string.Join(", ", n.Take(10))}{(n.Length > 10 ? ", …" : "")})" : "")}, label dropout {cfg.Train.LabelDropoutFor(cfg.Model)}");
        var wall = Stopwatch.StartNew();
        using var trainer = new Trainer(cfg, runDir, resume, data, onMessage: say, resumeFrom: resumeFrom);
        say?.Invoke($"train: {trainer.Data.Count} examples of shape [{string.Join(", ", trainer.Data.ExampleShape)}], {Models.ModelFactory.ParameterCount(trainer.Model):N0} parameters");
        trainer.OnProgress = callbacks?.Training;
        trainer.Run();

        RunLog.WriteLossPlot(runDir, Path.Combine(runDir, "loss.png"));
        var sw = Stopwatch.StartNew();
        using var samples = trainer.WriteSamples(Path.Combine(runDir, "samples.png"), callbacks?.Sampling);
        double sampleSeconds = sw.Elapsed.TotalSeconds;
        IO.SampleOutput.Save(Path.Combine(runDir, "samples.npy"), samples);
        var summary = RunSummary.Of(trainer, samples, sampleSeconds, wall.Elapsed.TotalSeconds);
        Util.AtomicFile.WriteAllText(Path.Combine(runDir, "metrics.json"), summary.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        return summary;
    }
}
