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
    /// <summary>The options, in the order the help lists them.</summary>
    internal static readonly IReadOnlyList<OptionSpec> Options =
    [
        OptionSpec.Value("configs", "LIST", "the configs to measure, comma-separated (default image28,image32)"),
        OptionSpec.Value("precision", "LIST", """
            float32, bf16-mixed or both, comma-separated (default: both where the CPU has native
            bfloat16, else float32)
            """),
        OptionSpec.Value("train-steps", "N", "training steps measured per config and precision (default 5)"),
        OptionSpec.Value("sample-steps", "N", "DDIM steps of the sampling measurement (default 20)"),
        OptionSpec.Value("sample-batch", "B", "samples per batch of the sampling measurement (default 64)"),
        OptionSpec.Value("memory-steps", "N", """
            first trains the first config N steps in the first precision and reports the process's
            peak resident memory after N/2 and N steps (default 0: skip)
            """),
        OptionSpec.Value("threads", "N", "libtorch CPU threads (default: libtorch's)"),
        OptionSpec.Value("out", "FILE.json", "where the results go (default bench/results.json)"),
    ];

    public static HelpPage Help => new("""
        diffusion bench [--configs image28,image32] [--precision float32,bf16-mixed] [--train-steps N]
                        [--sample-steps N] [--sample-batch B] [--memory-steps N] [--threads N] [--out FILE.json]
        """, """
        Measures, for the reference UNet configs (image28, image32, demo) and each precision, training
        throughput (samples/s for full AdamW steps at the config's batch size) and sampling throughput
        (DDIM with --sample-steps steps, samples/s and network evaluations/s), with the achieved GFLOP/s
        and, as the yardstick, the GFLOP/s of a 2048³ float32 (and bfloat16) matrix product measured in
        the same run. FLOPs are counted per layer (convolutions, linear layers, attention products; a
        training step counted as 3× the forward). Data is random: the cost does not depend on it.
        Results go to FILE.json (default bench/results.json) and a table on stdout.
        """, Options);

    public static int Run(string[] argv)
    {
        var a = new Args("bench", argv, Options);
        a.NoPositionals();
        if (a.Int("threads", 1) is int th) torch.set_num_threads(th);
        int trainSteps = a.Int("train-steps", 1) ?? 5;
        int sampleSteps = a.Int("sample-steps", 1) ?? 20;
        int sampleBatch = a.Int("sample-batch", 1) ?? 64;
        int memorySteps = a.Int("memory-steps", 0) ?? 0;
        string outPath = a.Get("out") ?? Path.Combine("bench", "results.json");
        var names = (a.Get("configs") ?? "image28,image32").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var precisions = (a.Get("precision") ?? (Precisions.CpuBf16 is null ? "float32" : "float32,bf16-mixed"))
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(p => Precisions.Parse(p, "bench --precision")).Distinct().ToList();
        if (precisions.Count == 0) throw new UsageError("bench --precision: expected float32, bf16-mixed or both, comma-separated");

        // The memory run comes first, so that the process's peak resident set is its own (not a larger config's).
        JsonObject? memory = null;
        if (memorySteps > 0)
        {
            memory = ThroughputBenchmark.MemoryRun(names[0], precisions[0], memorySteps, Console.Error.WriteLine);
            Console.WriteLine($"memory ({names[0]}, {Precisions.Name(precisions[0])}, {memorySteps} steps): peak RSS {memory["peak_rss_mib_at_half"]} MiB after half, {memory["peak_rss_mib_at_end"]} MiB at the end ({memory["growth_second_half_percent"]} %)");
        }
        double mmF32 = ThroughputBenchmark.MatmulGflops(ScalarType.Float32);
        double mmBf16 = ThroughputBenchmark.MatmulGflops(ScalarType.BFloat16);
        Console.WriteLine($"matmul 2048³: float32 {mmF32:F0} GFLOP/s, bfloat16 {mmBf16:F0} GFLOP/s");
        var results = new List<ThroughputResult>();
        Console.WriteLine($"{"config",-9} {"precision",-10} {"shape",-9} {"params",10} {"fwd GFLOP",10} {"train smp/s",12} {"train GFLOP/s",14} {"sample smp/s",13} {"evals/s",9} {"sample GFLOP/s",15}");
        foreach (var name in names)
            foreach (var precision in precisions)
            {
                var r = ThroughputBenchmark.Measure(name, precision, trainSteps, sampleSteps, sampleBatch);
                results.Add(r);
                Console.WriteLine($"{name,-9} {r.Precision,-10} {string.Join("x", r.Shape),-9} {r.Parameters,10:N0} {r.ForwardFlopsPerExample / 1e9,10:F3} {r.TrainSamplesPerSecond,12:F1} {r.TrainGflops,14:F1} {r.SampleSamplesPerSecond,13:F2} {r.SampleEvaluationsPerSecond,9:F0} {r.SampleGflops,15:F1}");
            }
        Util.AtomicFile.WriteAllText(outPath, ThroughputBenchmark.Document(results, mmF32, mmBf16, memory).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        Console.WriteLine($"wrote {outPath}");
        return 0;
    }
}
