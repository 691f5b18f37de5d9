using TorchSharp;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Diffusion.Config;
using Diffusion.Data;
using Diffusion.Training;

namespace Diffusion.Cli;

public static class TrainCommand
{
    public static readonly string Help = $$"""
        diffusion train [--config FILE|NAME] [--set key=value]... [--data SPEC] [--data-dir DIR]
                        [--remedy NAME[,NAME]...] [--steps N] [--seed S] [--out RUN_DIR] [--resume] [--force]
                        [--threads N] [--quiet]

        Trains a denoising diffusion model and writes into RUN_DIR: checkpoint.ckpt (model, EMA,
        optimizer, step, RNG states, config), config.json, log.jsonl, loss.png, samples.png (+ .npy)
        from the EMA weights, and metrics.json.

          --config FILE|NAME  a .json or .toml config, or a built-in one (demo, toy, image28, image32).
                              Without it, --data picks a default: the MLP for vectors, the small UNet for images.
          --set key=value     override one config key, e.g. --set train.lr=2e-4 --set model.channel-mult=[1,2,2]
          --data SPEC         {{DataFormsHelp()}}
          --data-dir DIR      folder of the dataset's files (Fashion-MNIST IDX, mnist digits)
          --remedy NAMES      switch remedies on with their defaults (before --set, which can tune them):
                              input-perturbation (perturbation.gamma=0.1), debiased (loss.weighting=debiased),
                              time-sharing (time-sharing.intervals=5, threshold T/10),
                              consistency (consistency.weight=1, max-steps 5), smd (smd.enabled=true), all
          --steps N           total optimisation steps (with --resume: continue up to N in total)
          --seed S            seed of every random draw (model init, data order, t, noise, dropout)
          --out RUN_DIR       run folder (default runs/<data>-<time>)
          --resume            continue the run in --out from its checkpoint, exactly
          --force             delete an existing run in --out and start over
          --threads N         libtorch CPU threads (default: the config's train.threads, else libtorch's)
          --quiet             no progress bar
        """;

    private static readonly string[] ValueOptions = ["config", "set", "remedy", "data", "data-dir", "steps", "seed", "out", "threads"];

    private static readonly string[] SwitchOptions = ["resume", "force", "quiet"];

    public static int Run(string[] argv)
    {
        var a = new Args("train", argv, ValueOptions, SwitchOptions);
        a.NoPositionals();
        bool resume = a.Switch("resume");
        string? outDir = a.Get("out");
        RunConfig cfg;

        if (resume)
        {
            if (outDir is null) throw new UsageError("diffusion train: --resume needs --out RUN_DIR (the run to continue)");
            foreach (var o in new[] { "config", "set", "remedy", "data", "seed" })
                if (a.Has(o)) throw new UsageError($"diffusion train: --resume continues the run with its saved config; --{o} cannot change it (only --steps, --threads and --data-dir may be given)");
            if (a.Switch("force")) throw new UsageError("diffusion train: --resume and --force contradict each other");
            var header = Checkpoint.ReadHeader(Checkpoint.Resolve(outDir));
            var tree = header.Config;
            if (a.Int("steps", 0) is int st) ConfigLoader.ApplySet(tree, $"train.steps={st}");
            if (a.Get("data-dir") is string dd) tree["data"]!["data-dir"] = dd;
            cfg = ConfigLoader.FromTree(tree, $"checkpoint in {outDir}");
        }
        else
        {
            cfg = BuildConfig(a);
            outDir ??= Path.Combine("runs", $"{SafeName(cfg.Data.Spec)}-{DateTime.Now:yyyyMMdd-HHmmss}");
            if (a.Switch("force") && Directory.Exists(outDir))
            {
                if (!File.Exists(Path.Combine(outDir, Checkpoint.FileName)) && Directory.EnumerateFileSystemEntries(outDir).Any() && !File.Exists(Path.Combine(outDir, RunFolder.ConfigFile)))
                    throw new UsageError($"diffusion train: --force would delete {outDir}, which does not look like a run folder; remove it yourself");
                Directory.Delete(outDir, recursive: true);
            }
        }

        if (!resume && File.Exists(Path.Combine(outDir, Checkpoint.FileName)))
            throw new UsageError($"diffusion train: --out {outDir} already holds a run ({Checkpoint.FileName}); pass --resume to continue it, --force to start over, or choose another --out");
        int threads = a.Int("threads", 1) ?? cfg.Train.Threads;
        if (threads > 0) torch.set_num_threads(threads);
        bool quiet = a.Switch("quiet");

        var remedies = cfg.ActiveRemedies();
        Console.Error.WriteLine($"train: data {cfg.Data.Spec}, model {cfg.Model.Type} ({cfg.Model.Prediction}), schedule {cfg.Schedule.Name} T={cfg.Schedule.Length}, {cfg.Train.Steps} steps of batch {cfg.Train.BatchSize}, seed {cfg.Train.Seed}, {torch.get_num_threads()} threads → {outDir}");
        Console.Error.WriteLine($"train: remedies: {(remedies.Count == 0 ? "none (baseline)" : string.Join(", ", remedies))}");
        var wall = Stopwatch.StartNew();
        using var trainer = new Trainer(cfg, outDir, resume, onMessage: m => Console.Error.WriteLine(m));
        Console.Error.WriteLine($"train: {trainer.Data.Count} examples of shape [{string.Join(", ", trainer.Data.ExampleShape)}], {Models.ModelFactory.ParameterCount(trainer.Model):N0} parameters");
        var bar = new ProgressBar("train", !quiet);
        trainer.OnProgress = p => bar.Report(p.Step, p.TotalSteps, p.Loss, p.StepsPerSecond);
        try { trainer.Run(); }
        finally { bar.Finish(); }

        RunLog.WriteLossPlot(outDir, Path.Combine(outDir, "loss.png"));
        var sampleBar = new ProgressBar("sample", !quiet);
        var sw = Stopwatch.StartNew();
        using var samples = trainer.WriteSamples(Path.Combine(outDir, "samples.png"), (d, t) => sampleBar.Report(d, t));
        double sampleSeconds = sw.Elapsed.TotalSeconds;
        sampleBar.Finish();
        IO.SampleOutput.Save(Path.Combine(outDir, "samples.npy"), samples);

        var metrics = RunSummary.Of(trainer, samples, sampleSeconds, wall.Elapsed.TotalSeconds).ToJson();
        Util.AtomicFile.WriteAllText(Path.Combine(outDir, "metrics.json"), metrics.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        Console.Error.WriteLine($"train: done in {ProgressBar.Format(wall.Elapsed.TotalSeconds)}; wrote {Path.Combine(outDir, "samples.png")}, loss.png, checkpoint.ckpt, metrics.json");
        return 0;
    }

    /// <summary>The config of a new run: a file or built-in config (or the default for --data), then --set, --data, --data-dir, --steps, --seed.</summary>
    public static RunConfig BuildConfig(Args a)
    {
        JsonObject tree;
        string origin;
        string? configArg = a.Get("config");
        string? data = a.Get("data");
        if (configArg is not null)
        {
            bool looksLikeFile = configArg.Contains('/') || configArg.Contains('\\') || configArg.EndsWith(".toml") || configArg.EndsWith(".json");
            tree = looksLikeFile || File.Exists(configArg) ? ConfigLoader.FileTree(configArg) : ConfigLoader.EmbeddedTree(configArg);
            origin = configArg;
        }
        else if (data is not null)
        {
            string name = DataKinds.DefaultConfigName(data);
            tree = ConfigLoader.EmbeddedTree(name);
            origin = $"built-in config {name}";
        }
        else throw new UsageError("diffusion train: give --config FILE (or a built-in name: demo, toy, image28, image32) or --data SPEC");

        foreach (var list in a.All("remedy"))
        {
            try { foreach (var set in Remedies.Presets(list)) ConfigLoader.ApplySet(tree, set); }
            catch (UserError e) { throw new UsageError("diffusion train: " + e.Message); }
        }
        foreach (var s in a.All("set")) ConfigLoader.ApplySet(tree, s);
        if (data is not null) ConfigLoader.ApplySet(tree, "data.spec=" + JsonSerializer.Serialize(data));
        if (a.Get("data-dir") is string dd) ConfigLoader.ApplySet(tree, "data.data-dir=" + JsonSerializer.Serialize(dd));
        if (a.Int("steps", 0) is int steps) ConfigLoader.ApplySet(tree, $"train.steps={steps}");
        if (a.Long("seed") is long seed) ConfigLoader.ApplySet(tree, $"train.seed={seed}");
        return ConfigLoader.FromTree(tree, origin);
    }

    // The --data forms of every registered kind, " | "-separated, wrapped under the option's column.
    private static string DataFormsHelp()
    {
        const int Column = 22, Width = 100;
        var lines = new List<string>();
        string line = "";
        foreach (var form in DataKinds.All.SelectMany(k => k.Forms))
        {
            if (line.Length == 0) line = form;
            else if (Column + line.Length + 3 + form.Length <= Width) line += " | " + form;
            else { lines.Add(line); line = "| " + form; }
        }
        lines.Add(line);
        return string.Join("\n" + new string(' ', Column), lines);
    }

    private static string SafeName(string spec) =>
        new string(spec.Select(c => char.IsLetterOrDigit(c) || c == '-' ? c : '-').ToArray()).Trim('-') is { Length: > 0 } s ? s[..Math.Min(s.Length, 40)] : "run";
}
