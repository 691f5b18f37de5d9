using System.Text.Json.Nodes;
using Diffusion.Metrics;
using Diffusion.Models;
using Diffusion.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Training;

/// <summary>
/// What a finished training command reports in <c>metrics.json</c>: the run (data, remedies, steps,
/// batch size, parameters, threads), its timings and throughput, the final loss (mean of the last tenth
/// of the log), how the final samples were drawn and, when the data is a known Gaussian mixture, their
/// scores against it.
/// </summary>
public sealed record RunSummary
{
    public required string Data { get; init; }
    public required IReadOnlyList<string> Remedies { get; init; }
    public required long Steps { get; init; }
    public required int BatchSize { get; init; }
    public required long Parameters { get; init; }
    public required int Threads { get; init; }
    /// <summary>The arithmetic of training (float32 or bf16-mixed).</summary>
    public required string Precision { get; init; }
    /// <summary>Training wall time of the whole run, over every session (as saved in the checkpoint).</summary>
    public required double TrainSecondsTotal { get; init; }
    /// <summary>Training wall time of this session and the steps it took.</summary>
    public required double TrainSecondsThisRun { get; init; }
    public required long StepsThisRun { get; init; }
    /// <summary>Mean loss of the last tenth of the log entries; null for an empty log.</summary>
    public required double? FinalLoss { get; init; }
    public required string Sampler { get; init; }
    public required int Samples { get; init; }
    public required double SampleSeconds { get; init; }
    public required double WallSeconds { get; init; }
    public MixtureScores? Mixture { get; init; }

    /// <summary>
    /// The summary of <paramref name="trainer"/>'s run after <see cref="Trainer.Run()"/> and
    /// <see cref="Trainer.WriteSamples"/> (which drew <paramref name="samples"/> in <paramref name="sampleSeconds"/>);
    /// <paramref name="wallSeconds"/> is the whole command's time.
    /// </summary>
    public static RunSummary Of(Trainer trainer, Tensor samples, double sampleSeconds, double wallSeconds)
    {
        var cfg = trainer.Config;
        var log = RunLog.Read(Path.Combine(trainer.RunDir, RunLog.FileName));
        var tail = log.Skip(Math.Max(0, log.Count - Math.Max(1, log.Count / 10))).ToList();
        return new RunSummary
        {
            Data = cfg.Data.Spec,
            Remedies = cfg.ActiveRemedies(),
            Steps = trainer.Step,
            BatchSize = cfg.Train.BatchSize,
            Parameters = ModelFactory.ParameterCount(trainer.Model),
            Threads = torch.get_num_threads(),
            Precision = Precisions.Name(trainer.Model.Precision),
            TrainSecondsTotal = trainer.ElapsedSeconds,
            TrainSecondsThisRun = trainer.TrainSeconds,
            StepsThisRun = trainer.TrainedSteps,
            FinalLoss = tail.Count > 0 ? tail.Average(e => e.Loss) : null,
            Sampler = $"{Samplers.Describe(cfg.Sample)}, EMA weights",
            Samples = cfg.Sample.N,
            SampleSeconds = sampleSeconds,
            WallSeconds = wallSeconds,
            Mixture = trainer.Data.Mixture is { } gmm ? MixtureMetrics.Score(gmm, samples) : null,
        };
    }

    /// <summary>The <c>metrics.json</c> object (snake_case keys, rounded values).</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["data"] = Data,
            ["remedies"] = new JsonArray(Remedies.Select(r => (JsonNode)r).ToArray()),
            ["steps"] = Steps,
            ["batch_size"] = BatchSize,
            ["parameters"] = Parameters,
            ["threads"] = Threads,
            ["precision"] = Precision,
            ["train_seconds_total"] = Math.Round(TrainSecondsTotal, 2),
            ["train_seconds_this_run"] = Math.Round(TrainSecondsThisRun, 2),
            ["train_samples_per_second"] = TrainSecondsThisRun > 0 ? Math.Round(StepsThisRun * BatchSize / TrainSecondsThisRun, 2) : null,
            ["final_loss"] = FinalLoss is double l ? Math.Round(l, 6) : null,
            ["sampler"] = Sampler,
            ["samples"] = Samples,
            ["sample_seconds"] = Math.Round(SampleSeconds, 2),
            ["wall_seconds_this_command"] = Math.Round(WallSeconds, 2),
        };
        if (Mixture is { } s)
        {
            o["fraction_within_3_sigma"] = Math.Round(s.FractionWithin3Sigma, 4);
            o["modes_covered"] = s.ModesCovered;
            o["modes"] = s.Modes;
            o["mean_log_likelihood"] = Math.Round(s.MeanLogLikelihood, 4);
        }
        return o;
    }
}
