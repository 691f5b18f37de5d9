using TorchSharp;
using Diffusion.Util;
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

        var results = new List<ThroughputResult>();
        Console.WriteLine($"{"config",-9} {"shape",-9} {"params",10} {"fwd GFLOP",10} {"train smp/s",12} {"train GFLOP/s",14} {"sample smp/s",13} {"evals/s",9} {"sample GFLOP/s",15}");
        foreach (var name in names)
        {
            var r = ThroughputBenchmark.Measure(name, trainSteps, sampleSteps, sampleBatch);
            results.Add(r);
            Console.WriteLine($"{name,-9} {string.Join("x", r.Shape),-9} {r.Parameters,10:N0} {r.ForwardFlopsPerExample / 1e9,10:F3} {r.TrainSamplesPerSecond,12:F1} {r.TrainGflops,14:F1} {r.SampleSamplesPerSecond,13:F2} {r.SampleEvaluationsPerSecond,9:F0} {r.SampleGflops,15:F1}");
        }
        Util.AtomicFile.WriteAllText(outPath, ThroughputBenchmark.Document(results).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        Console.WriteLine($"wrote {outPath}");
        return 0;
    }
}
