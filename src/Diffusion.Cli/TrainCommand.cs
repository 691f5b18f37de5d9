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
    /// <summary>The options, in the order the help lists them.</summary>
    internal static readonly IReadOnlyList<OptionSpec> Options =
    [
        OptionSpec.Value("config", "FILE|NAME", """
            a .json or .toml config, or a built-in one (demo, toy, image28, image32).
            Without it, --data picks a default: the MLP for vectors, the small UNet for images.
            """),
        OptionSpec.Value("set", "key=value", "override one config key, e.g. --set train.lr=2e-4 --set model.channel-mult=[1,2,2]"),
        OptionSpec.Value("data", "SPEC", DataFormsHelp()),
        OptionSpec.Value("data-dir", "DIR", "folder of the dataset's files (Fashion-MNIST IDX, mnist digits)"),
        OptionSpec.Value("remedy", "NAMES", "switch remedies on with their defaults (before --set, which can tune them), or all:\n" + RemedyHelp(),
                         [.. Remedies.All.Select(r => r.Name), "all"]),
        OptionSpec.Value("steps", "N", "total optimisation steps (with --resume: continue up to N in total)"),
        OptionSpec.Value("seed", "S", "seed of every random draw (model init, data order, t, noise, dropout)"),
        OptionSpec.Value("out", "RUN_DIR", "run folder (default runs/<data>-<time>)"),
        OptionSpec.Value("init-weights", "FILE", """
            start the model and EMA from a safetensors export (diffusion export) of a run with
            the same model config; recorded as train.init-weights (a resume does not reload it)
            """),
        OptionSpec.Switch("resume", """
            continue the run in --out from its checkpoint, exactly; --config, --set, --remedy,
            --data and --seed may be repeated if they leave the saved config unchanged
            """),
        OptionSpec.Value("resume-from", "W", """
            with --resume: continue from 'prev' (the newest kept previous checkpoint, e.g.
            when the latest is damaged) or from the checkpoint FILE W
            """, ["prev"]),
        OptionSpec.Switch("force", "delete an existing run in --out and start over"),
        OptionSpec.Value("precision", "P", """
            train.precision: float32, bf16-mixed (convolutions, linear layers and attention in
            bfloat16; weights, optimizer, EMA, loss and norm statistics float32) or auto (default:
            bf16-mixed for the UNet where the CPU has AVX512_BF16 or AMX, float32 otherwise)
            """, ["float32", "bf16-mixed", "auto"]),
        OptionSpec.Value("threads", "N", "libtorch CPU threads (default: the config's train.threads, else libtorch's)"),
        OptionSpec.Switch("quiet", "no progress bar"),
    ];

    public static HelpPage Help => new("""
        diffusion train [--config FILE|NAME] [--set key=value]... [--data SPEC] [--data-dir DIR]
                        [--remedy NAME[,NAME]...] [--steps N] [--seed S] [--out RUN_DIR] [--resume [--resume-from prev|FILE]]
                        [--force] [--init-weights FILE.safetensors] [--precision P] [--threads N] [--quiet]
        """, """
        Trains a denoising diffusion model and writes into RUN_DIR: checkpoint.ckpt (model, EMA,
        optimizer, step, RNG states, config; every section SHA-256-checked when read), the previous
        checkpoint as checkpoint.prev.ckpt (train.keep-checkpoints), config.json, log.jsonl, loss.png,
        samples.png (+ .npy) from the EMA weights, and metrics.json. train.lock marks a running train.
        """, Options);

    // --precision P is train.precision=P, after any --set.
    private static List<string> Sets(Args a)
    {
        var sets = a.All("set").ToList();
        if (a.Get("precision") is string p) sets.Add($"train.precision={p}");
        return sets;
    }

    public static int Run(string[] argv)
    {
        var a = new Args("train", argv, Options);
        a.NoPositionals();
        bool resume = a.Switch("resume");
        string? outDir = a.Get("out");
        RunConfig cfg;
        string? resumeFrom = null;
        {
            if (resume)
            {
                if (outDir is null) throw new UsageError("diffusion train: --resume needs --out RUN_DIR (the run to continue)");
                if (a.Has("init-weights")) throw new UsageError("diffusion train: --resume continues the run with its saved weights; --init-weights cannot change it (it applies to a new run only)");
                if (a.Switch("force")) throw new UsageError("diffusion train: --resume and --force contradict each other");
                resumeFrom = a.Get("resume-from");
                cfg = TrainingRun.ResumeConfig(outDir, new TrainRequest
                {
                    Config = a.Get("config"), Remedies = a.All("remedy"), Sets = Sets(a), Data = a.Get("data"),
                    DataDir = a.Get("data-dir"), Steps = a.Int("steps", 0), Seed = a.Long("seed"),
                }, resumeFrom);
            }
            else
            {
                if (a.Has("resume-from")) throw new UsageError("diffusion train: --resume-from needs --resume");
                if (!a.Has("config") && !a.Has("data")) throw new UsageError("diffusion train: give --config FILE (or a built-in name: demo, toy, image28, image32) or --data SPEC");
                cfg = TrainingRun.NewConfig(new TrainRequest
                {
                    Config = a.Get("config"), Remedies = a.All("remedy"), Sets = Sets(a), Data = a.Get("data"),
                    DataDir = a.Get("data-dir"), Steps = a.Int("steps", 0), Seed = a.Long("seed"), InitWeights = a.Get("init-weights"),
                });
                outDir ??= TrainingRun.DefaultRunDir(cfg);
                TrainingRun.PrepareNew(outDir, a.Switch("force"));
            }
        }
        int threads = a.Int("threads", 1) ?? cfg.Train.Threads;
        if (threads > 0) torch.set_num_threads(threads);
        bool quiet = a.Switch("quiet");

        var wall = Stopwatch.StartNew();
        var bar = new ProgressBar("train", !quiet);
        ProgressBar? sampleBar = null;   // made when sampling starts, so its rate and ETA count from there
        try
        {
            TrainingRun.Execute(cfg, outDir, resume, new TrainingCallbacks
            {
                Message = m => Console.Error.WriteLine(m),
                Training = p => bar.Report(p.Step, p.TotalSteps, p.Loss, p.StepsPerSecond),
                Sampling = (d, t) => { bar.Finish(); (sampleBar ??= new ProgressBar("sample", !quiet)).Report(d, t); },
            }, resumeFrom);
        }
        finally { bar.Finish(); sampleBar?.Finish(); }
        Console.Error.WriteLine($"train: done in {ProgressBar.Format(wall.Elapsed.TotalSeconds)}; wrote {Path.Combine(outDir, "samples.png")}, loss.png, checkpoint.ckpt, metrics.json");
        return 0;
    }

    // One line per registered remedy: its name, the problem and the --set assignments of its preset.
    private static string RemedyHelp() => string.Join("\n", Remedies.All.Select(r => $"  {r.Name,-19}{r.Problem}: {string.Join(" ", r.Preset)}"));

    // The --data forms of every registered kind, " | "-separated, in lines that fit 100 columns from the help's column.
    private static string DataFormsHelp()
    {
        const int Column = HelpText.Column, Width = 100;
        var lines = new List<string>();
        string line = "";
        foreach (var form in DataKinds.All.SelectMany(k => k.Forms))
        {
            if (line.Length == 0) line = form;
            else if (Column + line.Length + 3 + form.Length <= Width) line += " | " + form;
            else { lines.Add(line); line = "| " + form; }
        }
        lines.Add(line);
        return string.Join("\n", lines);
    }

}
