using TorchSharp;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Diffusion.Config;
using Diffusion.Models;
using Diffusion.Sampling;
using static TorchSharp.torch;

namespace Diffusion.Cli;

public static class BenchCommand
{
    public const string Help = """
        diffusion bench [--configs image28,image32] [--train-steps N] [--sample-steps N]
                        [--sample-batch B] [--threads N] [--out FILE.json]

        Measures, for the reference UNet configs, training throughput (samples/s for full AdamW steps
        at the config's batch size) and sampling throughput (DDIM with --sample-steps steps, samples/s
        and network evaluations/s), with the achieved GFLOP/s. FLOPs are counted per layer
        (convolutions, linear layers, attention products; a training step counted as 3× the forward).
        Data is random: the cost does not depend on it. Results go to FILE.json (default
        bench/results.json) and a table on stdout.
        """;

    private static readonly string[] ValueOptions = ["configs", "train-steps", "sample-steps", "sample-batch", "threads", "out"];

    public static int Run(string[] argv)
    {
        var a = new Args("bench", argv, ValueOptions, []);
        a.NoPositionals();
        if (a.Int("threads", 1) is int th) torch.set_num_threads(th);
        int trainSteps = a.Int("train-steps", 1) ?? 5;
        int sampleSteps = a.Int("sample-steps", 1) ?? 20;
        int sampleBatch = a.Int("sample-batch", 1) ?? 64;
        string outPath = a.Get("out") ?? Path.Combine("bench", "results.json");
        var names = (a.Get("configs") ?? "image28,image32").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

        var results = new JsonArray();
        Console.WriteLine($"{"config",-9} {"shape",-9} {"params",10} {"fwd GFLOP",10} {"train smp/s",12} {"train GFLOP/s",14} {"sample smp/s",13} {"evals/s",9} {"sample GFLOP/s",15}");
        foreach (var name in names)
        {
            var cfg = ConfigLoader.FromTree(ConfigLoader.EmbeddedTree(name), $"built-in config {name}");
            if (cfg.Model.Type != "unet") throw new UsageError($"diffusion bench: config {name} is not a UNet config");
            long[] shape = name.Contains("28") ? [1, 28, 28] : [3, 32, 32];
            torch.manual_seed(0);
            using var net = ModelFactory.Create(cfg.Model, shape);
            double fwdFlops = Util.FlopCounter.ForwardFlopsPerExample(net);
            long parameters = ModelFactory.ParameterCount(net);
            int batch = cfg.Train.BatchSize;

            // Training: full steps (forward, backward, clipping, AdamW).
            net.train();
            using var opt = optim.AdamW(net.parameters(), cfg.Train.Lr, weight_decay: cfg.Train.WeightDecay);
            var objective = new Training.DiffusionObjective(cfg.Schedule.Build(), Parameterization.Parse(cfg.Model.Prediction));
            using var den = new NetworkDenoiser(net, Parameterization.Parse(cfg.Model.Prediction));
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
            double trainRate = trainSteps * batch / trainSeconds;

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
            double sampleRate = sampleBatch / sampleSeconds;
            double evalRate = sampleBatch * (double)sampleSteps / sampleSeconds;
            var r = new JsonObject
            {
                ["config"] = name,
                ["shape"] = new JsonArray(shape.Select(s => (JsonNode)s).ToArray()),
                ["parameters"] = parameters,
                ["forward_gflop_per_example"] = Math.Round(fwdFlops / 1e9, 4),
                ["train_batch"] = batch,
                ["train_steps_timed"] = trainSteps,
                ["train_samples_per_second"] = Math.Round(trainRate, 2),
                ["train_gflops"] = Math.Round(3 * fwdFlops * trainRate / 1e9, 1),
                ["sample_batch"] = sampleBatch,
                ["sample_steps"] = sampleSteps,
                ["sample_samples_per_second"] = Math.Round(sampleRate, 3),
                ["sample_evaluations_per_second"] = Math.Round(evalRate, 1),
                ["sample_gflops"] = Math.Round(fwdFlops * evalRate / 1e9, 1),
            };
            results.Add(r);
            Console.WriteLine($"{name,-9} {string.Join("x", shape),-9} {parameters,10:N0} {fwdFlops / 1e9,10:F3} {trainRate,12:F1} {3 * fwdFlops * trainRate / 1e9,14:F1} {sampleRate,13:F2} {evalRate,9:F0} {fwdFlops * evalRate / 1e9,15:F1}");
        }
        var doc = new JsonObject
        {
            ["date_utc"] = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm"),
            ["machine"] = $"{RuntimeInformation.OSDescription}, {CpuModel()}, {Environment.ProcessorCount} logical CPUs",
            ["torch_threads"] = torch.get_num_threads(),
            ["libtorch"] = torch.__version__,
            ["results"] = results,
        };
        Util.AtomicFile.WriteAllText(outPath, doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        Console.WriteLine($"wrote {outPath}");
        return 0;
    }

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
