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
public sealed record ThroughputResult(string Config, string Precision, long[] Shape, long Parameters, double ForwardFlopsPerExample, int TrainBatch, int TrainStepsTimed,
                                      double TrainSamplesPerSecond, int SampleBatch, int SampleSteps, double SampleSamplesPerSecond, double SampleEvaluationsPerSecond)
{
    /// <summary>A training step counted as 3× the forward pass.</summary>
    public double TrainGflops => 3 * ForwardFlopsPerExample * TrainSamplesPerSecond / 1e9;
    public double SampleGflops => ForwardFlopsPerExample * SampleEvaluationsPerSecond / 1e9;

    public JsonObject ToJson() => new()
    {
        ["config"] = Config,
        ["precision"] = Precision,
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
    public static ThroughputResult Measure(string configName, Precision precision = Models.Precision.Float32, int trainSteps = 5, int sampleSteps = 20, int sampleBatch = 64)
    {
        using var run = new BenchTraining(configName, precision);
        var (cfg, shape, net, den) = (run.Config, run.Shape, run.Net, run.Denoiser);
        double fwdFlops = FlopCounter.ForwardFlopsPerExample(net);
        int batch = cfg.Train.BatchSize;

        // Training: full steps (forward, backward, clipping, AdamW), after two warm-up steps.
        double trainSeconds = 0;
        for (int i = 0; i < trainSteps + 2; i++)
        {
            var sw = Stopwatch.StartNew();
            run.Step();
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
        return new ThroughputResult(configName, Precisions.Name(precision), shape, ModelFactory.ParameterCount(net), fwdFlops, batch, trainSteps, trainSteps * batch / trainSeconds,
                                    sampleBatch, sampleSteps, sampleBatch / sampleSeconds, sampleBatch * (double)sampleSteps / sampleSeconds);
    }

    /// <summary>
    /// A built-in UNet config's network (seeded, in the constructor's <c>precision</c>) with AdamW and the ε-objective on random
    /// data in [−1, 1]: what both the throughput and the memory measurements train.
    /// </summary>
    private sealed class BenchTraining : IDisposable
    {
        public RunConfig Config { get; }
        public long[] Shape { get; }
        public DenoiserNetwork Net { get; }
        public NetworkDenoiser Denoiser { get; }
        private readonly optim.Optimizer opt;
        private readonly DiffusionObjective objective;
        private readonly Generator gen = new(0);
        private readonly List<TorchSharp.Modules.Parameter> parms;

        public BenchTraining(string configName, Precision precision)
        {
            Config = ConfigLoader.FromTree(ConfigLoader.EmbeddedTree(configName), $"built-in config {configName}");
            if (Config.Model.Type != "unet") throw new UserError($"bench: config {configName} is not a UNet config");
            Shape = ShapeOf(Config);
            manual_seed(0);
            Net = ModelFactory.Create(Config.Model, Shape);
            Net.Precision = precision;
            Net.train();
            var prediction = Parameterization.Parse(Config.Model.Prediction);
            opt = optim.AdamW(Net.parameters(), Config.Train.Lr, weight_decay: Config.Train.WeightDecay);
            objective = new DiffusionObjective(Config.Schedule.Build(), prediction);
            Denoiser = new NetworkDenoiser(Net, prediction);
            parms = Net.parameters().ToList();
        }

        /// <summary>One full step: forward, backward, gradient clipping at 1, AdamW.</summary>
        public void Step()
        {
            using var scope = NewDisposeScope();
            var x0 = rand(new long[] { Config.Train.BatchSize }.Concat(Shape).ToArray(), generator: gen).Mul(2L).Sub(1L);
            var loss = objective.Loss(Denoiser, x0, gen);
            opt.zero_grad();
            loss.backward();
            nn.utils.clip_grad_norm_(parms, 1.0);
            opt.step();
        }

        public void Dispose()
        {
            Denoiser.Dispose();
            opt.Dispose();
            gen.Dispose();
            Net.Dispose();
        }
    }

    /// <summary>The example shape of a built-in UNet config: its data's (28×28 greyscale for the Fashion-MNIST configs, the configured size and RGB otherwise).</summary>
    private static long[] ShapeOf(RunConfig cfg) =>
        cfg.Data.Spec is "fashion-mnist" or "mnist" ? [1, 28, 28] : [3, cfg.Data.ImageSize, cfg.Data.ImageSize];

    /// <summary>
    /// GFLOP/s of an n×n by n×n matrix product in <paramref name="dtype"/> (best of <paramref name="repeats"/> after a
    /// warm-up): the peak the network's GFLOP/s are read against.
    /// </summary>
    public static double MatmulGflops(ScalarType dtype, int n = 2048, int repeats = 5)
    {
        using var a = randn(n, n).to_type(dtype);
        using var b = randn(n, n).to_type(dtype);
        matmul(a, b).Dispose();
        double best = 0;
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            matmul(a, b).Dispose();
            best = Math.Max(best, 2.0 * n * n * n / sw.Elapsed.TotalSeconds / 1e9);
        }
        return best;
    }

    /// <summary>
    /// Resident memory over a long training run of a built-in config: <paramref name="steps"/> full steps, the process's
    /// peak resident set size (VmHWM) read after the first half and at the end, so that growth in the second half shows.
    /// </summary>
    public static JsonObject MemoryRun(string configName, Precision precision, int steps, Action<string>? progress = null)
    {
        using var run = new BenchTraining(configName, precision);
        long half = 0;
        var sw = Stopwatch.StartNew();
        for (int i = 1; i <= steps; i++)
        {
            run.Step();
            if (i == steps / 2) half = PeakResidentBytes();
            if (i % 100 == 0) progress?.Invoke($"memory run: step {i}/{steps}, peak RSS {PeakResidentBytes() / 1048576.0:F0} MiB, {i / sw.Elapsed.TotalSeconds:F2} steps/s");
        }
        long end = PeakResidentBytes();
        return new JsonObject
        {
            ["config"] = configName,
            ["precision"] = Precisions.Name(precision),
            ["steps"] = steps,
            ["peak_rss_mib_at_half"] = Math.Round(half / 1048576.0, 1),
            ["peak_rss_mib_at_end"] = Math.Round(end / 1048576.0, 1),
            ["growth_second_half_percent"] = half > 0 ? Math.Round(100.0 * (end - half) / half, 2) : null,
            ["seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 1),
        };
    }

    /// <summary>The process's peak resident set size in bytes (Linux VmHWM; 0 where /proc is absent).</summary>
    public static long PeakResidentBytes()
    {
        try
        {
            var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
            if (line is null) return 0;
            var kb = line["VmHWM:".Length..].Trim().Split(' ')[0];
            return long.Parse(kb, System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException) { return 0; }
    }

    /// <summary>The results file: date, machine, libtorch threads and version, matmul peaks, one object per config and precision.</summary>
    public static JsonObject Document(IEnumerable<ThroughputResult> results, double? matmulFloat32 = null, double? matmulBf16 = null, JsonObject? memory = null)
    {
        var doc = new JsonObject
        {
            ["date_utc"] = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm"),
            ["machine"] = $"{RuntimeInformation.OSDescription}, {MachineInfo.CpuModel}, {Environment.ProcessorCount} logical CPUs",
            ["cpu_bf16"] = Precisions.CpuBf16,
            ["malloc_tuned"] = NativeAllocator.Tuned,
            ["torch_threads"] = get_num_threads(),
            ["libtorch"] = __version__,
        };
        if (matmulFloat32 is double f) doc["matmul_2048_float32_gflops"] = Math.Round(f, 1);
        if (matmulBf16 is double b) doc["matmul_2048_bf16_gflops"] = Math.Round(b, 1);
        doc["results"] = new JsonArray(results.Select(r => (JsonNode)r.ToJson()).ToArray());
        if (memory is not null) doc["memory"] = memory;
        return doc;
    }
}
