using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Diffusion.Config;
using Diffusion.Models;
using Diffusion.Sampling;
using Diffusion.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Util;

/// <summary>One config's measured throughput (see <see cref="ThroughputBenchmark.Measure"/>).</summary>
public sealed record ThroughputResult(string Config, long[] Shape, long Parameters, double ForwardFlopsPerExample, int TrainBatch, int TrainStepsTimed,
                                      double TrainSamplesPerSecond, int SampleBatch, int SampleSteps, double SampleSamplesPerSecond, double SampleEvaluationsPerSecond)
{
    /// <summary>A training step counted as 3× the forward pass.</summary>
    public double TrainGflops => 3 * ForwardFlopsPerExample * TrainSamplesPerSecond / 1e9;
    public double SampleGflops => ForwardFlopsPerExample * SampleEvaluationsPerSecond / 1e9;

    public JsonObject ToJson() => new()
    {
        ["config"] = Config,
        ["shape"] = new JsonArray(Shape.Select(s => (JsonNode)s).ToArray()),
        ["parameters"] = Parameters,
        ["forward_gflop_per_example"] = Math.Round(ForwardFlopsPerExample / 1e9, 4),
        ["train_batch"] = TrainBatch,
        ["train_steps_timed"] = TrainStepsTimed,
        ["train_samples_per_second"] = Math.Round(TrainSamplesPerSecond, 2),
        ["train_gflops"] = Math.Round(TrainGflops, 1),
        ["sample_batch"] = SampleBatch,
        ["sample_steps"] = SampleSteps,
        ["sample_samples_per_second"] = Math.Round(SampleSamplesPerSecond, 3),
        ["sample_evaluations_per_second"] = Math.Round(SampleEvaluationsPerSecond, 1),
        ["sample_gflops"] = Math.Round(SampleGflops, 1),
    };
}

/// <summary>
/// Training and sampling throughput of a built-in UNet config on random data (the cost does not depend on it):
/// full training steps (forward, backward, clipping, AdamW) at the config's batch size after two warm-up steps,
/// and a real DDIM run of <c>sampleSteps</c> steps. FLOPs are counted per layer (<see cref="FlopCounter"/>).
/// </summary>
public static class ThroughputBenchmark
{
    public static ThroughputResult Measure(string configName, int trainSteps = 5, int sampleSteps = 20, int sampleBatch = 64)
    {
        var cfg = ConfigLoader.FromTree(ConfigLoader.EmbeddedTree(configName), $"built-in config {configName}");
        if (cfg.Model.Type != "unet") throw new UserError($"bench: config {configName} is not a UNet config");
        long[] shape = configName.Contains("28") ? [1, 28, 28] : [3, 32, 32];
        manual_seed(0);
        using var net = ModelFactory.Create(cfg.Model, shape);
        double fwdFlops = FlopCounter.ForwardFlopsPerExample(net);
        int batch = cfg.Train.BatchSize;
        var prediction = Parameterization.Parse(cfg.Model.Prediction);

        // Training: full steps (forward, backward, clipping, AdamW).
        net.train();
        using var opt = optim.AdamW(net.parameters(), cfg.Train.Lr, weight_decay: cfg.Train.WeightDecay);
        var objective = new DiffusionObjective(cfg.Schedule.Build(), prediction);
        using var den = new NetworkDenoiser(net, prediction);
        using var gen = new Generator(0);
        var parms = net.parameters().ToList();
        double trainSeconds = 0;
        for (int i = 0; i < trainSteps + 2; i++)
        {
            var sw = Stopwatch.StartNew();
            using var scope = NewDisposeScope();
            var x0 = rand(new long[] { batch }.Concat(shape).ToArray(), generator: gen) * 2 - 1;
            var loss = objective.Loss(den, x0, gen);
            opt.zero_grad();
            loss.backward();
            nn.utils.clip_grad_norm_(parms, 1.0);
            opt.step();
            if (i >= 2) trainSeconds += sw.Elapsed.TotalSeconds;
        }

        // Sampling: a real DDIM run.
        net.eval();
        var sampler = new DdimSampler(cfg.Schedule.Build(), Schedules.Respacing.Timesteps("uniform", cfg.Schedule.Length, sampleSteps), 0, true);
        double sampleSeconds;
        using (no_grad())
        {
            using var warm = randn(new long[] { 4 }.Concat(shape).ToArray());
            sampler.Sample(den, warm, null).Dispose();
            using var xT = randn(new long[] { sampleBatch }.Concat(shape).ToArray());
            var sw = Stopwatch.StartNew();
            sampler.Sample(den, xT, null).Dispose();
            sampleSeconds = sw.Elapsed.TotalSeconds;
        }
        return new ThroughputResult(configName, shape, ModelFactory.ParameterCount(net), fwdFlops, batch, trainSteps, trainSteps * batch / trainSeconds,
                                    sampleBatch, sampleSteps, sampleBatch / sampleSeconds, sampleBatch * (double)sampleSteps / sampleSeconds);
    }

    /// <summary>The results file: date, machine, libtorch threads and version, one object per config.</summary>
    public static JsonObject Document(IEnumerable<ThroughputResult> results) => new()
    {
        ["date_utc"] = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm"),
        ["machine"] = $"{RuntimeInformation.OSDescription}, {CpuModel()}, {Environment.ProcessorCount} logical CPUs",
        ["torch_threads"] = get_num_threads(),
        ["libtorch"] = __version__,
        ["results"] = new JsonArray(results.Select(r => (JsonNode)r.ToJson()).ToArray()),
    };

    private static string CpuModel()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line is null ? "unknown CPU" : line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { return "unknown CPU"; }
        catch (UnauthorizedAccessException) { return "unknown CPU"; }
    }
}
