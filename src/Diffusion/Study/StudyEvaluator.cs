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
/// folder (<c>reference.npz</c>) for every worker. The samples are not kept.
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
    }

    /// <summary>
    /// One evaluation of <paramref name="model"/>: its JSON (metrics, NFE, sampler description, seconds of sampling and of
    /// scoring, CPU seconds of this process).
    /// </summary>
    public JsonObject Evaluate(TrainedModel model, EvalTask task)
    {
        var e = plan.Evaluation;
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var sc = SampleRun.Resolve(model.Config.Sample, task.Assignments, model.Schedule.T);
        var sampler = Samplers.Create(sc, model.Schedule, clipDefault: model.IsImage);
        var sw = Stopwatch.StartNew();
        using var noise = NoiseSource.PerSample(e.Seed);
        using var denoiser = model.CreateDenoiser(noise, sc);
        var indices = Enumerable.Range(0, e.N).Select(i => (long)i).ToArray();
        using var samples = SampleRun.DrawIndexed(sampler, denoiser, noise, indices, model.ExampleShape, ScalarType.Float32, e.BatchSize);
        double sampleSeconds = sw.Elapsed.TotalSeconds;
        sw.Restart();
        using var features = extractor.Extract(samples);
        using var raw = samples.reshape(samples.shape[0], -1);
        var options = new EvalOptions { Metrics = e.Metrics, KidSubsets = e.KidSubsets, KidSubsetSize = Math.Min(e.KidSubsetSize, e.N), K = e.K, MmdMax = e.MmdN, Seed = 0 };
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
            ["n"] = e.N,
            ["sample_seed"] = e.Seed,
            ["sample_seconds"] = Math.Round(sampleSeconds, 3),
            ["score_seconds"] = Math.Round(scoreSeconds, 3),
            ["cpu_seconds"] = Math.Round((Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds, 3),
            ["metrics"] = result.ToJson(),
        };
        // The plan's reference, also when its features were read back from the study's reference.npz.
        o["metrics"]!["reference"] = e.Reference;
        return o;
    }

    public void Dispose()
    {
        extractor.Dispose();
        reference.Dispose();
    }
}
