using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Diffusion.Config;
using Diffusion.Data;
using Diffusion.IO;
using Diffusion.Models;
using Diffusion.Sampling;
using Diffusion.Schedules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Diffusion.Training;

/// <summary>Progress of a training run, reported after every step.</summary>
public readonly record struct TrainProgress(long Step, long TotalSteps, double Loss, double StepsPerSecond, double ElapsedSeconds);

/// <summary>One line of the run's JSONL log.</summary>
/// <summary>One line of the run's JSONL log; <c>Consistency</c> (the MMD² term before λ) only when that remedy is on.</summary>
public sealed record LogEntry(long Step, double Loss, double GradNorm, double Lr, double SamplesPerSecond, double? Consistency = null);

/// <summary>
/// Trains a denoiser: AdamW with explicit weight decay, linear LR warm-up (then constant or cosine),
/// gradient-norm clipping, an EMA of the weights, a JSONL log (step, loss, grad norm, lr, samples/s),
/// periodic sample grids and atomic checkpoints holding model, EMA, optimizer state, step, RNG states
/// and the full config. Every random draw comes from seeded generators whose state is checkpointed,
/// and the data order is a function of (seed, epoch), so a resumed run continues exactly where an
/// uninterrupted one would be.
/// </summary>
public sealed class Trainer : IDisposable
{
    public const string LogFile = "log.jsonl";
    public const string ConfigFile = "config.json";

    private readonly RunConfig cfg;
    private readonly string runDir;
    private readonly Dataset data;
    private readonly bool ownsData;
    private readonly NoiseSchedule schedule;
    private readonly DiffusionObjective objective;
    private readonly Generator gen;
    private DenoiserNetwork model = null!;
    private IDenoiser trainingDenoiser = null!;
    private Ema ema = null!;
    private AdamW optimizer = null!;
    private long step;
    private double elapsedBefore;

    /// <summary>Called after every optimisation step (for progress bars).</summary>
    public Action<TrainProgress>? OnProgress { get; set; }
    /// <summary>Called with each step's loss (tests compare resumed and uninterrupted runs with it).</summary>
    public Action<long, double>? OnStepLoss { get; set; }
    /// <summary>Informational messages (what is written where).</summary>
    public Action<string>? OnMessage { get; set; }

    public RunConfig Config => cfg;
    public DenoiserNetwork Model => model;
    public DenoiserNetwork EmaModel => ema.Shadow;
    public NoiseSchedule Schedule => schedule;
    public Dataset Data => data;
    public long Step => step;
    public string RunDir => runDir;

    /// <summary>Starts a new run in <paramref name="runDir"/> or, with <paramref name="resume"/>, continues the one there.</summary>
    /// <param name="dataset">Data to train on; when null it is loaded from the config.</param>
    public Trainer(RunConfig config, string runDir, bool resume, Dataset? dataset = null)
    {
        config.Validate();
        cfg = config;
        this.runDir = runDir;
        schedule = cfg.Schedule.Build();
        data = dataset ?? DataSources.Load(cfg.Data);
        ownsData = dataset is null;
        if (cfg.Train.BatchSize > data.Count && cfg.Train.BatchSize > 0)
            OnMessage?.Invoke($"note: batch size {cfg.Train.BatchSize} exceeds the {data.Count} examples; batches repeat examples");
        objective = DiffusionObjective.From(cfg, schedule);
        gen = new Generator((ulong)cfg.Train.Seed);
        if (resume) Resume();
        else Fresh();
    }

    private string CheckpointPath => Path.Combine(runDir, Checkpoint.FileName);

    private void Build()
    {
        torch.manual_seed(cfg.Train.Seed);
        model = ModelFactory.Create(cfg, data.ExampleShape);
        // The denoiser the objective asks: time sharing when on, SMD's η (one per example) from the training generator.
        trainingDenoiser = DenoiserStack.ForNetwork(cfg, model, gen, ownsNoise: false);
        ema = new Ema(ModelFactory.Create(cfg, data.ExampleShape), cfg.Ema.Decay, cfg.Ema.Warmup);
        ema.CopyFrom(model);
        ema.Shadow.eval();
        optimizer = optim.AdamW(model.parameters(), cfg.Train.Lr, cfg.Train.AdamBeta1, cfg.Train.AdamBeta2, 1e-8, cfg.Train.WeightDecay);
    }

    private void Fresh()
    {
        if (File.Exists(CheckpointPath))
            throw new UserError($"--out {runDir}: already holds a run ({Checkpoint.FileName}); pass --resume to continue it, or choose another --out");
        Directory.CreateDirectory(runDir);
        Build();
        torch.manual_seed(cfg.Train.Seed); // dropout stream starts from the seed, whatever building consumed
        step = 0;
        Util.AtomicFile.WriteAllText(Path.Combine(runDir, ConfigFile), ConfigLoader.ToJson(cfg));
        Util.AtomicFile.WriteAllText(Path.Combine(runDir, LogFile), "");
    }

    private void Resume()
    {
        if (!File.Exists(CheckpointPath)) throw new UserError($"--resume: {runDir} holds no {Checkpoint.FileName} to continue");
        var (header, sections) = Checkpoint.Read(CheckpointPath);
        if (!header.ExampleShape.SequenceEqual(data.ExampleShape))
            throw new UserError($"--resume: the checkpoint was trained on examples of shape [{string.Join(", ", header.ExampleShape)}], the data has [{string.Join(", ", data.ExampleShape)}]");
        header.CheckSchedule(schedule, CheckpointPath);
        Build();
        Checkpoint.LoadModule(CheckpointPath, sections, "model", model);
        Checkpoint.LoadModule(CheckpointPath, sections, "ema", ema.Shadow);
        Checkpoint.LoadOptimizer(CheckpointPath, sections, optimizer);
        using (var g = tensor(Convert.FromBase64String(header.GeneratorState), dtype: ScalarType.Byte)) gen.set_state(g);
        using (var g = tensor(Convert.FromBase64String(header.GlobalRngState), dtype: ScalarType.Byte)) torch.random.set_rng_state(g);
        step = header.Step;
        elapsedBefore = header.ElapsedSeconds;
        TruncateLog(step);
        OnMessage?.Invoke($"resuming {runDir} at step {step}");
    }

    // A run killed after its last checkpoint may have logged later steps; they are redone, so drop them.
    private void TruncateLog(long upTo)
    {
        string path = Path.Combine(runDir, LogFile);
        var kept = ReadLog(path).Where(e => e.Step <= upTo)
            .Select(e => JsonSerializer.Serialize(e, LogJson) + "\n");
        Util.AtomicFile.WriteAllText(path, string.Concat(kept));
    }

    private static readonly JsonSerializerOptions LogJson = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Reads a run's JSONL log (lines that do not parse, e.g. one cut short by a kill, are skipped).</summary>
    public static List<LogEntry> ReadLog(string path)
    {
        var list = new List<LogEntry>();
        if (!File.Exists(path)) return list;
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            try { if (JsonSerializer.Deserialize<LogEntry>(line, LogJson) is { } e) list.Add(e); }
            catch (JsonException) { }
        }
        return list;
    }

    /// <summary>Learning rate at step <paramref name="s"/>: linear warm-up from 0, then constant or cosine decay to 0.</summary>
    public double LearningRate(long s)
    {
        double lr = cfg.Train.Lr;
        int warm = cfg.Train.WarmupSteps;
        if (warm > 0 && s < warm) return lr * (s + 1) / warm;
        if (cfg.Train.LrSchedule == "cosine")
        {
            double total = Math.Max(1, cfg.Train.Steps - warm);
            double p = Math.Clamp((s - warm) / total, 0, 1);
            return lr * 0.5 * (1 + Math.Cos(Math.PI * p));
        }
        return lr;
    }

    // Data order: epoch e is a permutation drawn from a generator seeded with (seed, e); step s takes
    // the next batch-size positions of the concatenated epochs. Depends on nothing but (seed, s).
    private long cachedEpoch = -1;
    private long[] cachedPerm = [];

    private long[] BatchIndices(long s)
    {
        long n = data.Count, b = cfg.Train.BatchSize;
        var idx = new long[b];
        long pos = s * b;
        for (int i = 0; i < b; i++, pos++)
        {
            long epoch = pos / n;
            if (epoch != cachedEpoch)
            {
                using var g = new Generator((ulong)unchecked(cfg.Train.Seed * 1_000_003 + epoch + 1));
                using var p = randperm(n, generator: g);
                cachedPerm = p.data<long>().ToArray();
                cachedEpoch = epoch;
            }
            idx[i] = cachedPerm[pos % n];
        }
        return idx;
    }

    /// <summary>Runs until <c>train.steps</c> steps in total, then writes the final checkpoint, loss plot, samples and metrics.</summary>
    public void Run()
    {
        var sw = Stopwatch.StartNew();
        long total = cfg.Train.Steps;
        long sessionStart = step;
        var parameters = model.parameters().ToList();
        using var log = new StreamWriter(Path.Combine(runDir, LogFile), append: true);
        double lossSum = 0, gradSum = 0, consistencySum = 0;
        var parts = new Dictionary<string, double>();
        int inInterval = 0;
        var intervalWatch = Stopwatch.StartNew();
        double smoothed = double.NaN;
        bool savedAtEnd = false;
        model.train();
        while (step < total)
        {
            double lr = LearningRate(step);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            double lossValue, gradNorm;
            using (var scope = NewDisposeScope())
            {
                var x0 = Batch(step);
                var loss = objective.Loss(trainingDenoiser, x0, gen, objective.LogParts.Count == 0 ? null : parts);
                optimizer.zero_grad();
                loss.backward();
                gradNorm = nn.utils.clip_grad_norm_(parameters, cfg.Train.GradClip > 0 ? cfg.Train.GradClip : double.PositiveInfinity);
                optimizer.step();
                lossValue = loss.item<float>();
            }
            if (!double.IsFinite(lossValue))
                throw new UserError($"training diverged at step {step + 1} (loss {lossValue}); lower train.lr or raise train.warmup-steps" +
                    (File.Exists(CheckpointPath) ? $"; the last checkpoint is kept in {CheckpointPath}" : ""));
            ema.Update(model, step);
            step++;
            OnStepLoss?.Invoke(step, lossValue);
            smoothed = double.IsNaN(smoothed) ? lossValue : 0.98 * smoothed + 0.02 * lossValue;
            lossSum += lossValue; gradSum += gradNorm; inInterval++;
            if (parts.TryGetValue("consistency", out var r)) consistencySum += r;

            if (step % cfg.Train.LogEvery == 0 || step == total)
            {
                double secs = intervalWatch.Elapsed.TotalSeconds;
                var e = new LogEntry(step, lossSum / inInterval, gradSum / inInterval, lr, inInterval * cfg.Train.BatchSize / Math.Max(secs, 1e-9),
                                     objective.LogParts.Contains("consistency") ? consistencySum / inInterval : null);
                log.WriteLine(JsonSerializer.Serialize(e, LogJson));
                log.Flush();
                lossSum = gradSum = consistencySum = 0; inInterval = 0;
                intervalWatch.Restart();
            }
            double elapsed = elapsedBefore + sw.Elapsed.TotalSeconds;
            OnProgress?.Invoke(new TrainProgress(step, total, smoothed, (step - sessionStart) / Math.Max(sw.Elapsed.TotalSeconds, 1e-9), elapsed));
            if (step % cfg.Train.CheckpointEvery == 0 || step == total)
            {
                SaveCheckpoint(elapsed);
                savedAtEnd = step == total;
            }
            if (cfg.Train.SampleEvery > 0 && step % cfg.Train.SampleEvery == 0 && step != total)
            {
                WriteSamples(Path.Combine(runDir, "samples", $"step-{step:D7}.png"), null);
                model.train();
            }
        }
        if (!savedAtEnd) SaveCheckpoint(elapsedBefore + sw.Elapsed.TotalSeconds);
        TrainSeconds = sw.Elapsed.TotalSeconds;
        TrainedSteps = step - sessionStart;
    }

    /// <summary>Wall time of the last <see cref="Run"/> and the steps it took.</summary>
    public double TrainSeconds { get; private set; }
    public long TrainedSteps { get; private set; }

    private Tensor Batch(long s)
    {
        using var idx = tensor(BatchIndices(s), dtype: ScalarType.Int64);
        var x0 = data.Data.index_select(0, idx);
        if (cfg.Data.HorizontalFlip && data.IsImage)
        {
            var flip = (rand([x0.shape[0]], generator: gen) < 0.5).reshape(-1, 1, 1, 1);
            x0 = where(flip, x0.flip(3), x0);
        }
        return x0;
    }

    public void SaveCheckpoint(double elapsedSeconds)
    {
        using var g = gen.get_state();
        using var r = torch.random.get_rng_state();
        var header = new CheckpointHeader
        {
            Config = ConfigLoader.ToTree(cfg),
            ExampleShape = data.ExampleShape,
            Step = step,
            GeneratorState = Convert.ToBase64String(g.data<byte>().ToArray()),
            GlobalRngState = Convert.ToBase64String(r.data<byte>().ToArray()),
            ScheduleFingerprint = schedule.Fingerprint,
            ElapsedSeconds = elapsedSeconds,
        };
        Checkpoint.Save(CheckpointPath, header, model, ema.Shadow, optimizer);
    }

    /// <summary>Draws <c>sample.n</c> samples from the EMA model with the configured sampler and a fixed seed, and writes them (PNG grid or scatter).</summary>
    public Tensor WriteSamples(string path, SamplerProgress? progress)
    {
        var sampler = Samplers.Create(cfg.Sample, schedule, clipDefault: data.IsImage);
        ema.Shadow.eval();
        using var g = new Generator((ulong)unchecked(cfg.Train.Seed + 12345));
        var shape = new long[] { cfg.Sample.N }.Concat(data.ExampleShape).ToArray();
        Tensor samples;
        using (no_grad())
        {
            using var xT = randn(shape, generator: g);
            using var denoiser = DenoiserStack.ForSampling(cfg, ema.Shadow, cfg.Train.Seed + 12345, cfg.Sample);
            samples = sampler.Sample(denoiser, xT, g, progress);
        }
        Tensor? reference = null;
        if (!data.IsImage) reference = data.Data.narrow(0, 0, Math.Min(2000, data.Count));
        SampleOutput.Save(path, samples, reference, $"{cfg.Sample.N} samples, {cfg.Sample.Sampler} {cfg.Sample.Steps} steps, step {step}");
        return samples;
    }

    /// <summary>Writes the loss curve of the run's log as a PNG.</summary>
    public static void WriteLossPlot(string runDir, string path)
    {
        var entries = ReadLog(Path.Combine(runDir, LogFile));
        var x = entries.Select(e => (double)e.Step).ToArray();
        var y = entries.Select(e => e.Loss).ToArray();
        // Trailing moving average over a twentieth of the run.
        int w = Math.Max(1, y.Length / 20);
        var smooth = new double[y.Length];
        double acc = 0;
        for (int i = 0; i < y.Length; i++)
        {
            acc += y[i];
            if (i >= w) acc -= y[i - w];
            smooth[i] = acc / Math.Min(i + 1, w);
        }
        Plots.Lines(path, "training loss", "step", "loss (mean over each log interval)",
            [("loss", x, y), ($"moving average of {w}", x, smooth)], logY: true);
    }

    public void Dispose()
    {
        optimizer?.Dispose();
        ema?.Dispose();
        model?.Dispose();
        gen.Dispose();
        if (ownsData) data.Dispose();
    }
}
