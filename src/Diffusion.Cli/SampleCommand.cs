using TorchSharp;
using System.Diagnostics;
using Diffusion.Config;
using Diffusion.Data;
using Diffusion.IO;
using Diffusion.Models;
using Diffusion.Sampling;
using Diffusion.Schedules;
using Diffusion.Training;
using static TorchSharp.torch;

namespace Diffusion.Cli;

public static class SampleCommand
{
    public const string Help = """
        diffusion sample (--checkpoint RUN_DIR|FILE | --model gmm:SPEC.json) --out FILE.png|FILE.npy
                         [--sampler ddpm|ddim|dpm-solver] [--steps N] [--spacing ddim-stride|uniform|quadratic]
                         [--eta E] [--variance fixed-small|fixed-large] [--clip | --no-clip]
                         [--algorithm dpmsolver|dpmsolver++] [--method singlestep|multistep] [--order 1|2|3]
                         [--skip time-uniform|logSNR|time-quadratic] [--no-lower-order-final] [--denoise-to-zero]
                         [--eps-scale-b B] [--eps-scale-k K]
                         [--n COUNT] [--seed S] [--init-noise NOISE.npy] [--dtype float32|float64]
                         [--batch-size B] [--weights ema|model] [--threads N] [--quiet]

        Draws samples with DDPM (ancestral), DDIM or DPM-Solver from a trained checkpoint (EMA weights by
        default) or from the exact denoiser of a Gaussian mixture (gmm:SPEC.json, see README). FILE.npy holds
        the raw samples (N×D for vectors, N×C×H×W for images); FILE.png is an image grid, or a scatter
        plot for 2-D vectors.

          --sampler          ddpm, ddim or dpm-solver (default: the checkpoint's sample.sampler; ddim for gmm)
          --steps N          backward steps, respaced when below T; for dpm-solver, network evaluations
                             (default: the checkpoint's sample.steps for its own sampler, else T for ddpm,
                             50 for ddim, 20 for dpm-solver)
          --spacing          ddpm/ddim: which steps: ddim-stride, uniform (default) or quadratic
          --eta E            DDIM's η (default 0: deterministic)
          --variance         DDPM's σ²: fixed-small (β̃, default) or fixed-large (β)
          --clip/--no-clip   clip x̂0 to [−1, 1] at each step (default: the checkpoint's sample.clip-denoised,
                             else on for images, off for vectors;
                             dpm-solver: the dpmsolver++ form only)
          --algorithm        dpm-solver: dpmsolver (noise prediction) or dpmsolver++ (data prediction, default)
          --method           dpm-solver: multistep (default) or singlestep (DPM-Solver-fast: orders ≤ --order
                             combined to spend exactly --steps evaluations)
          --order K          dpm-solver: 1, 2 (default) or 3; order 1 is DDIM
          --skip             dpm-solver: where the steps go between t = 1 and 1/N: time-uniform (default),
                             logSNR (uniform in log-SNR) or time-quadratic
          --no-lower-order-final  dpm-solver multistep: keep the full order at the last steps (by default the
                             last steps drop to order 2 and 1 when steps < 10 for order 3, < 15 for order 2)
          --denoise-to-zero  dpm-solver: one more evaluation at the end that returns x̂0 at t = 1/N
          --eps-scale-b B    epsilon scaling (any sampler): the network's ε̂ is divided by k·t + b, t its time
          --eps-scale-k K    input 0 … T−1 (default b = 1, k = 0: off; the Epsilon Scaling authors use k = 0, b ≈ 1.004–1.017)
          --n COUNT          number of samples (default 64; the rows of --init-noise when given)
          --seed S           seed of x_T and of the sampler's noise (default 0)
          --init-noise FILE  x_T as an .npy array (N×D, or N×C×H×W for images), float32 or float64
          --dtype            float32 or float64 arithmetic (default: the noise file's, else float32)
          --batch-size B     samples per forward pass (default 256)
          --weights          ema (default) or model (the raw training weights)
        """;

    private static readonly string[] ValueOptions = ["checkpoint", "model", "out", "sampler", "steps", "spacing", "eta", "variance", "n", "seed", "init-noise", "dtype", "batch-size", "weights", "threads",
                                                     "algorithm", "method", "order", "skip", "eps-scale-b", "eps-scale-k"];
    private static readonly string[] SwitchOptions = ["clip", "no-clip", "quiet", "lower-order-final", "no-lower-order-final", "denoise-to-zero"];
    private static readonly string[] DpmSolverOptions = ["algorithm", "method", "order", "skip", "lower-order-final", "no-lower-order-final", "denoise-to-zero"];

    public static int Run(string[] argv)
    {
        var a = new Args("sample", argv, ValueOptions, SwitchOptions);
        a.NoPositionals();
        string outPath = a.Require("out", "FILE.png|FILE.npy");
        string ext = Path.GetExtension(outPath).ToLowerInvariant();
        if (ext != ".png" && ext != ".npy") throw new UsageError($"diffusion sample: --out {outPath}: expected a .png or .npy file");
        if (a.Has("checkpoint") == a.Has("model")) throw new UsageError("diffusion sample: give exactly one of --checkpoint RUN_DIR|FILE and --model gmm:SPEC.json");
        if (a.Switch("clip") && a.Switch("no-clip")) throw new UsageError("diffusion sample: --clip and --no-clip contradict each other");
        if (a.Int("threads", 1) is int threads) torch.set_num_threads(threads);
        bool quiet = a.Switch("quiet");

        IDenoiser denoiser;
        NoiseSchedule schedule;
        long[] exampleShape;
        bool isImage;
        SampleConfig sc;
        TrainedModel? trained = null;
        GaussianMixtureDenoiser? exact = null;
        Tensor? reference = null;
        if (a.Get("checkpoint") is string ck)
        {
            trained = TrainedModel.Load(ck, a.Get("weights") ?? "ema");
            denoiser = trained.CreateDenoiser(a.Long("seed") ?? 0);
            schedule = trained.Schedule;
            exampleShape = trained.ExampleShape;
            isImage = trained.IsImage;
            sc = trained.Config.Sample;
        }
        else
        {
            if (a.Has("weights")) throw new UsageError("diffusion sample: --weights applies to --checkpoint only");
            string m = a.Get("model")!;
            if (!m.StartsWith("gmm:", StringComparison.Ordinal)) throw new UsageError($"diffusion sample: --model {m}: expected gmm:SPEC.json");
            var (gmm, schedCfg) = GaussianMixture.Load(m[4..]);
            schedule = schedCfg.Build();
            exact = new GaussianMixtureDenoiser(gmm, schedule);
            denoiser = exact;
            exampleShape = [gmm.Dim];
            isImage = false;
            sc = new SampleConfig { Sampler = "ddim" };
            if (ext == ".png" && gmm.Dim == 2)
            {
                using var g0 = new Generator(1);
                reference = gmm.Sample(2000, g0);
            }
        }

        // The sampler's settings: the flags, else the checkpoint's sample config, else defaults.
        string sampler = a.Get("sampler") ?? sc.Sampler;
        bool dpm = sampler == "dpm-solver";
        if (a.Switch("lower-order-final") && a.Switch("no-lower-order-final")) throw new UsageError("diffusion sample: --lower-order-final and --no-lower-order-final contradict each other");
        var cfg = new SampleConfig
        {
            Sampler = sampler,
            // The checkpoint's own step count when it names the same sampler; else T for ddpm, 20 for dpm-solver, 50 for ddim.
            Steps = a.Int("steps", 1) ?? (trained is not null && sampler == sc.Sampler ? Math.Min(sc.Steps, schedule.T) : sampler == "ddpm" ? schedule.T : dpm ? 20 : 50),
            Spacing = a.Get("spacing") ?? sc.Spacing,
            Eta = a.Double("eta") ?? 0.0,
            Variance = a.Get("variance") ?? sc.Variance,
            ClipDenoised = a.Switch("clip") ? true : a.Switch("no-clip") ? false : sc.ClipDenoised,
            Algorithm = a.Get("algorithm") ?? sc.Algorithm,
            Method = a.Get("method") ?? sc.Method,
            Order = a.Int("order") ?? sc.Order,
            Skip = a.Get("skip") ?? sc.Skip,
            LowerOrderFinal = a.Switch("lower-order-final") || (!a.Switch("no-lower-order-final") && sc.LowerOrderFinal),
            DenoiseToZero = a.Switch("denoise-to-zero") || sc.DenoiseToZero,
            EpsScaleB = a.Double("eps-scale-b") ?? sc.EpsScaleB,
            EpsScaleK = a.Double("eps-scale-k") ?? sc.EpsScaleK,
        };
        if (!Samplers.Names.Contains(cfg.Sampler)) throw new UsageError($"diffusion sample: --sampler {cfg.Sampler}: expected one of {string.Join(", ", Samplers.Names)}");
        if (a.Has("eta") && cfg.Sampler != "ddim") throw new UsageError("diffusion sample: --eta applies to --sampler ddim only");
        if (a.Has("variance") && cfg.Sampler != "ddpm") throw new UsageError("diffusion sample: --variance applies to --sampler ddpm only");
        if (!dpm && DpmSolverOptions.FirstOrDefault(a.Has) is string only) throw new UsageError($"diffusion sample: --{only} applies to --sampler dpm-solver only");
        if (dpm && a.Has("spacing")) throw new UsageError("diffusion sample: --spacing applies to ddpm and ddim; dpm-solver places its steps with --skip time-uniform|logSNR|time-quadratic");
        if (dpm && cfg.Algorithm == "dpmsolver" && a.Switch("clip")) throw new UsageError("diffusion sample: --clip applies to dpm-solver with --algorithm dpmsolver++ only (the noise form has no x̂0 to clip)");
        ISampler s;
        try { s = Samplers.Create(cfg, schedule, clipDefault: isImage); }
        catch (ConfigException e) { throw new UsageError("diffusion sample: " + e.Message.Replace("sample.", "--")); }
        catch (ArgumentException e) { throw new UsageError("diffusion sample: " + e.Message); }

        // x_T: from the file, or drawn with the seed.
        long seed = a.Long("seed") ?? 0;
        using var gen = new Generator((ulong)seed);
        string? dtypeArg = a.Get("dtype");
        if (dtypeArg is not null && dtypeArg != "float32" && dtypeArg != "float64") throw new UsageError($"diffusion sample: --dtype {dtypeArg}: expected float32 or float64");
        Tensor xT;
        if (a.Get("init-noise") is string noisePath)
        {
            if (a.Has("n")) throw new UsageError("diffusion sample: --n and --init-noise both set the sample count; give one");
            using var raw = Npy.Read(noisePath);
            var want = new long[] { -1 }.Concat(exampleShape).ToArray();
            if (raw.dim() != want.Length || !raw.shape.Skip(1).SequenceEqual(exampleShape))
                throw new UserError($"--init-noise {noisePath}: expected shape (N, {string.Join(", ", exampleShape)}), got ({string.Join(", ", raw.shape)})");
            if (raw.dtype != ScalarType.Float32 && raw.dtype != ScalarType.Float64)
                throw new UserError($"--init-noise {noisePath}: expected float32 or float64 values, got {raw.dtype}");
            var dt = dtypeArg switch { "float64" => ScalarType.Float64, "float32" => ScalarType.Float32, _ => raw.dtype };
            xT = raw.to_type(dt);
        }
        else
        {
            int n = a.Int("n", 1) ?? 64;
            var dt = dtypeArg == "float64" ? ScalarType.Float64 : ScalarType.Float32;
            xT = randn(new long[] { n }.Concat(exampleShape).ToArray(), dtype: dt, generator: gen);
        }

        int batch = a.Int("batch-size", 1) ?? 256;
        long total = xT.shape[0];
        var bar = new ProgressBar("sample", !quiet);
        var sw = Stopwatch.StartNew();
        var parts = new List<Tensor>();
        long chunks = (total + batch - 1) / batch;
        using (no_grad())
        {
            for (long i = 0, c = 0; i < total; i += batch, c++)
            {
                using var x = xT.narrow(0, i, Math.Min(batch, total - i));
                long cc = c;
                parts.Add(s.Sample(denoiser, x, gen, (d, t) => bar.Report(cc * t + d, chunks * t)));
            }
        }
        bar.Finish();
        using var samples = cat(parts, 0);
        foreach (var p in parts) p.Dispose();
        xT.Dispose();
        SampleOutput.Save(outPath, samples, reference, $"{total} samples, {cfg.Sampler} {s.Evaluations} steps");
        string evals = exact is not null ? $", {exact.Evaluations} denoiser evaluations" : "";
        Console.Error.WriteLine($"sample: {total} samples with {Samplers.Describe(cfg)} in {sw.Elapsed.TotalSeconds:F1}s{evals} → {outPath}");
        trained?.Dispose();
        reference?.Dispose();
        return 0;
    }
}
