using System.Diagnostics;
using Diffusion.Config;
using Diffusion.Data;
using Diffusion.IO;
using Diffusion.Models;
using Diffusion.Sampling;
using Diffusion.Schedules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Training;

/// <summary>Progress of a training run, reported after every step.</summary>
public readonly record struct TrainProgress(long Step, long TotalSteps, double Loss, double StepsPerSecond, double ElapsedSeconds);

/// <summary>
/// Trains a denoiser: AdamW with explicit weight decay, the <see cref="LrSchedule"/>, gradient-norm
/// clipping and an EMA of the weights, over batches in the <see cref="DataOrder"/>; writes the
/// <see cref="RunLog"/>, periodic sample grids and atomic <see cref="TrainingCheckpoint"/>s into the
/// <see cref="RunFolder"/>. Every random draw comes from seeded generators whose state is
/// checkpointed, so a resumed run continues exactly where an uninterrupted one would.
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly RunConfig cfg;
    private readonly RunFolder folder;
    private readonly Dataset data;
    private readonly bool ownsData;
    private readonly NoiseSchedule schedule;
    private readonly DiffusionObjective objective;
    private readonly Generator gen;
    private readonly LrSchedule lrSchedule;
    private readonly DataOrder order;
    private DenoiserNetwork model = null!;
    private IDenoiser trainingDenoiser = null!;
    private Ema ema = null!;
    private AdamW optimizer = null!;
    private readonly Action<string>? onMessage;
    private readonly string? resumeFrom;
    private RunLock? runLock;
    private long step;
    // Step of the run folder's checkpoint.ckpt when this trainer wrote or resumed it (null: not ours to keep as previous).
    private long? latestStep;

    /// <summary>Called after every optimisation step (for progress bars).</summary>
    public Action<TrainProgress>? OnProgress { get; set; }
    /// <summary>Called with each step's loss (tests compare resumed and uninterrupted runs with it).</summary>
    public Action<long, double>? OnStepLoss { get; set; }

    public RunConfig Config => cfg;
    public DenoiserNetwork Model => model;
    public DenoiserNetwork EmaModel => ema.Shadow;
    public NoiseSchedule Schedule => schedule;
    public Dataset Data => data;
    public long Step => step;
    public string RunDir => folder.Dir;

    /// <summary>Starts a new run in <paramref name="runDir"/> or, with <paramref name="resume"/>, continues the one there.</summary>
    /// <param name="config">A validated config: loaded by <see cref="ConfigLoader"/>, or checked with <see cref="RunConfig.Validate"/> after changes by hand.</param>
    /// <param name="runDir">The run folder (see <see cref="RunFolder"/>).</param>
    /// <param name="resume">Continue the run in <paramref name="runDir"/> from its checkpoint instead of starting one.</param>
    /// <param name="dataset">Data to train on; when null it is loaded from the config.</param>
    /// <param name="onMessage">Informational messages, e.g. that batches repeat examples or where a resumed run continues.</param>
    /// <param name="resumeFrom">With <paramref name="resume"/>: null for the latest checkpoint, <c>prev</c> for the newest kept previous one, or a checkpoint file (see <see cref="RunFolder.ResumePath"/>).</param>
    /// <remarks>The trainer holds the run folder's <see cref="RunLock"/> from construction until <see cref="Dispose"/>.</remarks>
    public Trainer(RunConfig config, string runDir, bool resume, Dataset? dataset = null, Action<string>? onMessage = null, string? resumeFrom = null)
    {
        Util.NativeAllocator.Tune();
        cfg = config;
        this.onMessage = onMessage;
        this.resumeFrom = resumeFrom;
        schedule = cfg.Schedule.Build();
        data = dataset ?? DataSources.Load(cfg.Data);
        ownsData = dataset is null;
        try { ClassConditioning.CheckData(cfg, data); }
        catch
        {
            if (ownsData) data.Dispose();
            throw;
        }
        if (cfg.Train.BatchSize > data.Count && cfg.Train.BatchSize > 0)
            onMessage?.Invoke($"note: batch size {cfg.Train.BatchSize} exceeds the {data.Count} examples; batches repeat examples");
        objective = DiffusionObjective.From(cfg, schedule);
        gen = new Generator((ulong)cfg.Train.Seed);
        lrSchedule = new LrSchedule(cfg.Train);
        order = new DataOrder(data, cfg.Train.BatchSize, cfg.Train.Seed, cfg.Data.HorizontalFlip);
        try { folder = resume ? Resume(runDir) : Fresh(runDir); }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void Build()
    {
        torch.manual_seed(cfg.Train.Seed);
        model = ModelFactory.Create(cfg, data.ExampleShape);
        // The denoiser the objective asks: time sharing when on, SMD's η (one per example) from the training generator.
        trainingDenoiser = DenoiserStack.ForNetwork(cfg, model, gen, ownsNoise: false);
        ema = new Ema(ModelFactory.Create(cfg, data.ExampleShape), cfg.Ema.Decay, cfg.Ema.Warmup);
        ema.CopyFrom(model);
        ema.Shadow.eval();
        optimizer = new AdamW(model.parameters(), cfg.Train.Lr, cfg.Train.AdamBeta1, cfg.Train.AdamBeta2, 1e-8, cfg.Train.WeightDecay);
    }

    private RunFolder Fresh(string runDir)
    {
        var f = RunFolder.CreateNew(runDir);
        runLock = RunLock.Acquire(runDir, onMessage);
        // Another trainer may have finished a run here between the check and the lock: check again, now that we hold it.
        f.ThrowIfHoldsRun();
        f.RemoveTemporaryFiles();
        // What auto chose is saved with the run, so that a resume elsewhere keeps the arithmetic.
        if (cfg.Train.Precision == Precisions.Auto) cfg.Train.Precision = Precisions.Name(Precisions.Resolve(Precisions.Auto, cfg.Model.Type));
        Build();
        if (cfg.Train.InitWeights is string init)
        {
            SafetensorsWeights.LoadInto(init, model);
            ema.CopyFrom(model);
            onMessage?.Invoke($"train: model and EMA start from {init}");
        }
        onMessage?.Invoke($"train: precision {Precisions.Describe(model.Precision)}");
        torch.manual_seed(cfg.Train.Seed); // dropout stream starts from the seed, whatever building consumed
        step = 0;
        f.WriteStart(cfg);
        return f;
    }

    private RunFolder Resume(string runDir)
    {
        var f = RunFolder.Existing(runDir);
        runLock = RunLock.Acquire(runDir, onMessage);
        f.RemoveTemporaryFiles();
        var saved = f.OpenForResume(resumeFrom, path => TrainingCheckpoint.Open(path, data.ExampleShape, schedule));
        Build();
        saved.Restore(model, ema, optimizer, gen);
        step = saved.Step;
        ElapsedSeconds = saved.ElapsedSeconds;
        // Resumed from another file than the latest: the latest (damaged, or ahead of the chosen one) is not kept as previous.
        latestStep = resumeFrom is null ? step : null;
        f.TruncateLog(step);
        onMessage?.Invoke($"train: precision {Precisions.Describe(model.Precision)}");
        onMessage?.Invoke(resumeFrom is null ? $"resuming {runDir} at step {step}" : $"resuming {runDir} at step {step} from {f.ResumePath(resumeFrom)}");
        return f;
    }

    /// <summary>Learning rate at step <paramref name="s"/> (see <see cref="LrSchedule"/>).</summary>
    public double LearningRate(long s) => lrSchedule.At(s);

    /// <summary>Runs until <c>train.steps</c> steps in total, then writes the final checkpoint.</summary>
    public void Run() => Run(null);

    /// <summary>
    /// Runs until <c>train.steps</c> steps in total, then writes the final checkpoint. With <paramref name="stopAt"/> it
    /// stops earlier, after that step, and writes the checkpoint there: the learning-rate schedule still counts to
    /// <c>train.steps</c>, so a run continued later (by another call, or a resume) takes the same steps as one that never
    /// stopped (<c>diffusion study</c> evaluates its checkpoints this way).
    /// </summary>
    public void Run(long? stopAt)
    {
        Stopped = false;
        var sw = Stopwatch.StartNew();
        double elapsedBefore = ElapsedSeconds;
        long total = Math.Min(cfg.Train.Steps, stopAt ?? long.MaxValue);
        long sessionStart = step;
        var parameters = model.parameters().ToList();
        using var log = new RunLog(folder.LogPath, cfg.Train.BatchSize, objective.LogParts);
        var parts = new Dictionary<string, double>();
        double smoothed = double.NaN;
        long savedAt = -1;   // the step of the last checkpoint this call wrote
        model.train();
        while (step < total)
        {
            double lr = lrSchedule.At(step);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            double lossValue, gradNorm;
            using (var scope = NewDisposeScope())
            {
                var x0 = order.Batch(step, gen);
                var labels = cfg.Model.Conditional ? order.BatchLabels(step) : null;
                var loss = objective.Loss(trainingDenoiser, x0, gen, objective.LogParts.Count == 0 ? null : parts, labels);
                optimizer.zero_grad();
                loss.backward();
                gradNorm = nn.utils.clip_grad_norm_(parameters, cfg.Train.GradClip > 0 ? cfg.Train.GradClip : double.PositiveInfinity);
                optimizer.step();
                lossValue = loss.item<float>();
            }
            if (!double.IsFinite(lossValue))
                throw new UserError($"training diverged at step {step + 1} (loss {lossValue}); lower train.lr or raise train.warmup-steps" +
                    (File.Exists(folder.CheckpointPath) ? $"; the last checkpoint is kept in {folder.CheckpointPath}" : ""));
            ema.Update(model, step);
            step++;
            OnStepLoss?.Invoke(step, lossValue);
            smoothed = double.IsNaN(smoothed) ? lossValue : 0.98 * smoothed + 0.02 * lossValue;
            log.Add(lossValue, gradNorm, parts);
            if (step % cfg.Train.LogEvery == 0 || step == total) log.Write(step, lr);

            double elapsed = elapsedBefore + sw.Elapsed.TotalSeconds;
            OnProgress?.Invoke(new TrainProgress(step, cfg.Train.Steps, smoothed, (step - sessionStart) / Math.Max(sw.Elapsed.TotalSeconds, 1e-9), elapsed));
            if (step % cfg.Train.CheckpointEvery == 0 || step == total)
            {
                SaveCheckpoint(elapsed);
                savedAt = step;
            }
            if (cfg.Train.SampleEvery > 0 && step % cfg.Train.SampleEvery == 0 && step != total)
            {
                WriteSamples(folder.SamplesPath(step), null);
                model.train();
            }
            if (step < total && StopRequested?.Invoke() == true)
            {
                Stopped = true;   // the checkpoint below is written at this step: a resume goes on from here exactly
                break;
            }
        }
        if (savedAt != step) SaveCheckpoint(elapsedBefore + sw.Elapsed.TotalSeconds);
        TrainSeconds = sw.Elapsed.TotalSeconds;
        TrainedSteps = step - sessionStart;
    }

    /// <summary>
    /// Asked after each training step; when it returns true, <see cref="Run(long?)"/> writes the checkpoint at the step
    /// reached and returns early with <see cref="Stopped"/> set (<c>diffusion study --until … --fill</c> stops at a
    /// deadline this way). A resume from that checkpoint takes the same steps as a run that never stopped.
    /// </summary>
    public Func<bool>? StopRequested { get; set; }
    /// <summary>Whether the last <see cref="Run(long?)"/> returned early because <see cref="StopRequested"/> said so.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Wall time of the last <see cref="Run(long?)"/> (which <see cref="Run()"/> calls) and the steps it took.</summary>
    public double TrainSeconds { get; private set; }
    public long TrainedSteps { get; private set; }
    /// <summary>Training wall time of the whole run, every session included, as of the last checkpoint.</summary>
    public double ElapsedSeconds { get; private set; }

    /// <summary>
    /// Saves the training state at the current step into the run's checkpoint, keeping the one it replaces as
    /// <c>train.keep-checkpoints</c> says (see <see cref="RunFolder.KeepPreviousAs"/>); <paramref name="elapsedSeconds"/>
    /// is the run's training wall time so far.
    /// </summary>
    public void SaveCheckpoint(double elapsedSeconds)
    {
        int keep = cfg.Train.KeepCheckpoints;
        string? keepAs = latestStep == step ? null : folder.KeepPreviousAs(keep, latestStep);
        TrainingCheckpoint.Save(folder.CheckpointPath, cfg, data.ExampleShape, schedule, step, elapsedSeconds, gen, model, ema, optimizer, keepAs);
        folder.PruneKept(keep);
        latestStep = step;
        ElapsedSeconds = elapsedSeconds;
    }

    /// <summary>
    /// Draws <c>sample.n</c> samples from the EMA model with the configured sampler and a fixed seed, and writes them (PNG
    /// grid or scatter). A class-conditional model draws sample i of class i mod K, guided with <c>sample.guidance</c>, a grid column per class.
    /// </summary>
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
            if (cfg.Model.Conditional)
            {
                var guided = new GuidedDenoiser(denoiser, cfg.Sample.Guidance); // not disposed: it would dispose the stack, which `using` does
                using var all = ScalarOps.Arange(cfg.Sample.N, ScalarType.Int64);
                using var labels = all.Remainder(cfg.Model.NumClasses);
                guided.Labels = labels;
                samples = sampler.Sample(guided, xT, g, progress);
            }
            else samples = sampler.Sample(denoiser, xT, g, progress);
        }
        Tensor? reference = null;
        if (!data.IsImage) reference = data.Data.narrow(0, 0, Math.Min(2000, data.Count));
        SampleOutput.Save(path, samples, reference, $"{cfg.Sample.N} samples, {cfg.Sample.Sampler} {cfg.Sample.Steps} steps, step {step}",
                          cfg.Model.Conditional ? Math.Min(cfg.Model.NumClasses, cfg.Sample.N) : 0);
        return samples;
    }

    /// <summary>Frees the networks and the data, and releases the run folder's lock.</summary>
    public void Dispose()
    {
        optimizer?.Dispose();
        ema?.Dispose();
        model?.Dispose();
        gen?.Dispose();
        if (ownsData) data?.Dispose();
        runLock?.Dispose();
        runLock = null;
    }
}
