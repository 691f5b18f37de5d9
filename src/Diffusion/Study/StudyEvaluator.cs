using System.Diagnostics;
using System.Text.Json.Nodes;
using Diffusion.Config;
using Diffusion.Data;
using Diffusion.Metrics;
using Diffusion.Metrics.Features;
using Diffusion.Sampling;
using Diffusion.Training;
using static TorchSharp.torch;

namespace Diffusion.Study;

/// <summary>
/// Draws and scores the samples of one evaluation of a study: the plan's n samples from a checkpoint's EMA weights with
/// one sampler, sample i from the per-sample generator of (evaluation seed, i) — so every variant starts from the same
/// x_T and the result does not depend on the batch size — then the plan's metrics in its feature space against the
/// reference, as <c>diffusion eval</c> computes them. The reference's features are computed once and saved in the study
/// folder (<c>reference.npz</c>) for every worker. The samples are not kept, but for the first few of the plan's
/// <c>[report] samples</c> row (<see cref="KeptSamples"/>).
/// </summary>
public sealed class StudyEvaluator : IDisposable
{
    private readonly StudyPlan plan;
    private readonly IFeatureExtractor extractor;
    private readonly ReferenceSet reference;

    public StudyEvaluator(StudyPlan plan, string outDir, RunConfig anyConfig, Action<string>? log)
    {
        this.plan = plan;
        var e = plan.Evaluation;
        extractor = FeatureExtractors.Create(e.Features, new FeatureSettings
        {
            DataDir = e.DataDir, ClassifierCache = e.ClassifierCache, InceptionWeights = e.InceptionWeights, BatchSize = 64, Log = log,
        });
        bool isStats = e.Reference.EndsWith(".npz", StringComparison.OrdinalIgnoreCase) && !e.Reference.Contains(':');
        string cached = Path.Combine(outDir, "reference.npz");
        if (isStats) reference = ReferenceSet.Load(e.Reference);
        else if (File.Exists(cached)) reference = ReferenceSet.Load(cached);
        else
        {
            log?.Invoke($"study: {e.Features} features of the reference {e.Reference} (at most {e.ReferenceN} examples) → {cached}");
            var all = DataSources.Load(new DataConfig { Spec = e.Reference, DataDir = e.DataDir, ImageSize = anyConfig.Data.ImageSize, Channels = anyConfig.Data.Channels });
            using var data = SampleSet.Subset(all, e.ReferenceN, 0);
            using var rows = extractor.Extract(data.Data);
            reference = ReferenceSet.FromFeatures(e.Features, e.Reference, rows, data.Mixture, data.ExampleShape);
            string tmp = $"{cached}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}.npz";
            reference.Save(tmp);
            File.Move(tmp, cached, overwrite: true);
        }
        if (reference.Features is string f && f != e.Features)
            throw new UserError($"{plan.Path}: evaluation.reference {e.Reference} holds {f} features, not {e.Features}");
        CheckOrRecordFeatures(outDir, anyConfig, log);
    }

    /// <summary>The study's <c>features.json</c>: which features its results were scored in, and the real-versus-real floor.</summary>
    public static string FeaturesFile(string outDir) => Path.Combine(outDir, "features.json");

    // The first evaluator of a study records the identity of its feature extractor (for a classifier, the SHA-256 of
    // its weights: the cached classifier is trained per machine and could differ) with the real-versus-real floor in
    // features.json; every later one — on this machine or another that continues the study — checks that it scores in
    // the same features, since results scored in other features would not be comparable.
    private void CheckOrRecordFeatures(string outDir, RunConfig anyConfig, Action<string>? log)
    {
        var e = plan.Evaluation;
        string path = FeaturesFile(outDir);
        string identity = extractor.Identity;
        if (StudyFolder.Read(path) is { } recorded)
        {
            string? was = recorded["identity"]?.GetValue<string>();
            if (was != identity)
                throw new UserError($"{path}: this study's results were scored in features '{was}', but this machine's {e.Features} is '{identity}' " +
                                    "(another training of the classifier?); give the study the classifier its results used (evaluation.classifier-cache) or use another --out");
            return;
        }
        var o = new JsonObject { ["features"] = e.Features, ["identity"] = identity };
        if (extractor is ClassifierFeatures c)
            o["classifier"] = new JsonObject
            {
                ["key"] = c.Info.Key, ["test_accuracy"] = c.Info.TestAccuracy, ["test_count"] = c.Info.TestCount,
                ["threads"] = c.Info.Threads, ["created_utc"] = c.Info.CreatedUtc,
            };
        string? source = e.Floor ?? (anyConfig.Data.Spec != e.Reference ? anyConfig.Data.Spec : null);
        if (source is not null)
        {
            log?.Invoke($"study: real-versus-real floor: {e.N} examples of {source} against {e.Reference}");
            var all = DataSources.Load(new DataConfig { Spec = source, DataDir = e.DataDir, ImageSize = anyConfig.Data.ImageSize, Channels = anyConfig.Data.Channels });
            using var data = SampleSet.Subset(all, e.N, e.Seed);
            using var features = extractor.Extract(data.Data);
            using var raw = data.Data.reshape(data.Data.shape[0], -1);
            var options = new EvalOptions { Metrics = e.Metrics, KidSubsets = e.KidSubsets, KidSubsetSize = Math.Min(e.KidSubsetSize, (int)data.Count), K = e.K, MmdMax = e.MmdN, Seed = 0 };
            var result = Evaluation.Run(e.Features, features, reference, options, raw);
            if (reference.Mixture is { } mix && result.Mixture is not null && e.MixtureMinPerMode != 1)
                result.Mixture = MixtureMetrics.Score(mix, raw, e.MixtureMinPerMode);
            var metrics = result.ToJson();
            metrics["reference"] = e.Reference;
            o["floor"] = new JsonObject { ["source"] = source, ["n"] = data.Count, ["seed"] = e.Seed, ["metrics"] = metrics };
        }
        StudyFolder.Write(path, o);
    }

    /// <summary>
    /// One evaluation of <paramref name="model"/>: its JSON (metrics, NFE, sampler description, seconds of sampling and of
    /// scoring, CPU seconds of this process).
    /// </summary>
    public JsonObject Evaluate(TrainedModel model, EvalTask task)
    {
        var stop = CheckStop;
        var e = plan.Evaluation;
        int n = task.N ?? e.N;   // a sweep's own n: the first n of the plan's x_T
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var sc = SampleRun.Resolve(model.Config.Sample, task.Assignments, model.Schedule.T);
        var sampler = Samplers.Create(sc, model.Schedule, clipDefault: model.IsImage);
        var sw = Stopwatch.StartNew();
        using var noise = NoiseSource.PerSample(e.Seed);
        using var denoiser = model.CreateDenoiser(noise, sc);
        var indices = Enumerable.Range(0, n).Select(i => (long)i).ToArray();
        using var samples = SampleRun.DrawIndexed(sampler, denoiser, noise, indices, model.ExampleShape, ScalarType.Float32, e.BatchSize,
                                                  progress: stop is null ? null : (_, _) => stop());
        double sampleSeconds = sw.Elapsed.TotalSeconds;
        sw.Restart();
        using var features = extractor.Extract(samples);
        using var raw = samples.reshape(samples.shape[0], -1);
        var options = new EvalOptions { Metrics = e.Metrics, KidSubsets = e.KidSubsets, KidSubsetSize = Math.Min(e.KidSubsetSize, n), K = e.K, MmdMax = e.MmdN, Seed = 0 };
        var result = Evaluation.Run(e.Features, features, reference, options, raw);
        if (reference.Mixture is { } mix && result.Mixture is not null && e.MixtureMinPerMode != 1)
            result.Mixture = MixtureMetrics.Score(mix, raw, e.MixtureMinPerMode);
        double scoreSeconds = sw.Elapsed.TotalSeconds;
        var o = new JsonObject
        {
            ["step"] = task.Step,
            ["label"] = task.Label,
            ["sampler_label"] = task.Sampler.Label,
            ["sweep"] = task.Sweep?.Name,
            ["point"] = task.Point?.Label,
            ["sampler"] = Samplers.Describe(sc),
            ["nfe"] = sampler.Evaluations,
            ["n"] = n,
            ["sample_seed"] = e.Seed,
            ["sample_seconds"] = Math.Round(sampleSeconds, 3),
            ["score_seconds"] = Math.Round(scoreSeconds, 3),
            ["cpu_seconds"] = Math.Round((Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds, 3),
            ["metrics"] = result.ToJson(),
        };
        // The plan's reference, also when its features were read back from the study's reference.npz.
        o["metrics"]!["reference"] = e.Reference;
        if (plan.Keeps(task) is int keep and > 0) o["samples"] = KeptSamples.Encode(samples, keep);
        return o;
    }

    /// <summary>Called after each sampler step of <see cref="Evaluate"/>; an exception thrown from it abandons the evaluation (a study's --until).</summary>
    public Action? CheckStop { get; set; }

    public void Dispose()
    {
        extractor.Dispose();
        reference.Dispose();
    }
}
