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
    /// <summary>The options, in the order the help lists them; the sampler list, the default steps and every sampler's
    /// own options come from the registry (a sampler's switch S also as --no-S).</summary>
    internal static readonly IReadOnlyList<OptionSpec> Options =
    [
        OptionSpec.Value("checkpoint", "RUN_DIR|FILE", "a run folder or checkpoint file (its EMA weights unless --weights model)"),
        OptionSpec.Value("model", "gmm:SPEC.json", "the exact denoiser of a Gaussian mixture (its schedule in the spec; see README)"),
        OptionSpec.Value("out", "FILE", "FILE.png (an image grid or a scatter plot), FILE.npy (the raw samples) or, with --shard, PART.npz"),
        OptionSpec.Value("sampler", null,
            $"{string.Join(", ", Samplers.Names.Take(Samplers.Names.Count - 1))} or {Samplers.Names[^1]} (default: the checkpoint's sample.sampler; ddim for gmm):\n"
            + string.Join("\n", Samplers.All.Select(k => $"  {k.Name,-11} {k.Help}")), Samplers.Names),
        OptionSpec.Value("steps", "N", $"""
            backward steps (dpm-solver: network evaluations; euler/heun: noise levels); default: the
            checkpoint's sample.steps for its own sampler, else the sampler's default:
            {string.Join(", ", Samplers.All.Select(k => $"{k.Name} {(k.Name == "ddpm" ? "T" : k.DefaultSteps(1000).ToString())}"))}
            """),
        OptionSpec.Negatable("clip", """
            clip x̂0 to [−1, 1] at each step (default: the checkpoint's sample.clip-denoised, else on for
            images, off for vectors; dpm-solver: the dpmsolver++ form only; euler/heun never clip)
            """),
        .. Samplers.AllOptions().Select(p => p.Option.IsSwitch ? OptionSpec.Negatable(p.Option.Key, p.Option.Help)
                                                                : OptionSpec.Value(p.Option.Key, "V", p.Option.Help, p.Option.Choices)),
        OptionSpec.Value("eps-scale-b", "B", """
            epsilon scaling (any sampler): the network's ε̂ is divided by k·t + b, t its time input 0 … T−1
            (default b = 1, k = 0: off; the Epsilon Scaling authors use k = 0, b ≈ 1.004–1.017)
            """),
        OptionSpec.Value("eps-scale-k", "K", "the k of epsilon scaling (see --eps-scale-b; default 0)"),
        OptionSpec.Value("class", "C", """
            class-conditional models (model.num-classes > 0; for gmm:SPEC.json one class per
            component): a class number 0 … K−1 or name, all (n/K of each class in turn; a .png grid
            gets one row per class), random (uniform, default) or none (the null class: unconditional)
            """, ["all", "random", "none"]),
        OptionSpec.Value("guidance", "W", """
            classifier-free guidance weight w ≥ 0 (default: the checkpoint's sample.guidance, 0 unless
            trained with it): ε̂ = (1 + w)·ε̂(x, c) − w·ε̂(x, ∅) (Ho & Salimans' convention; w = 0 is the
            conditional model unguided; diffusers' guidance_scale s = 1 + w); both passes in one batched
            forward pass, any sampler
            """),
        OptionSpec.Value("n", "COUNT", "number of samples (default 64; the rows of --init-noise when given)"),
        OptionSpec.Value("seed", "S", "seed of x_T and of the sampler's noise (default 0)"),
        OptionSpec.Value("init-noise", "FILE", "x_T as an .npy array (N×D, or N×C×H×W for images), float32 or float64"),
        OptionSpec.Value("dtype", null, "float32 or float64 arithmetic (default: the noise file's, else float32)", ["float32", "float64"]),
        OptionSpec.Value("batch-size", "B", "samples per forward pass (default 256)"),
        OptionSpec.Value("weights", null, "ema (default) or model (the raw training weights)", ["ema", "model"]),
        OptionSpec.Value("precision", null, "float32 or bf16-mixed network arithmetic (default: the checkpoint's train.precision)", ["float32", "bf16-mixed"]),
        OptionSpec.Value("shard", "k/S", """
            draw only shard k (0 … S−1) of S: the contiguous indices ⌊k·N/S⌋ … ⌊(k+1)·N/S⌋ − 1 of the
            --n samples, written with a manifest (and, for a class-conditional model, the classes) to --out PART.npz;
            join the parts with diffusion merge
            """),
        OptionSpec.Value("threads", "N", "libtorch CPU threads (default: libtorch's)"),
        OptionSpec.Switch("quiet", "no progress bar"),
    ];

    public static HelpPage Help => new("""
        diffusion sample (--checkpoint RUN_DIR|FILE | --model gmm:SPEC.json) --out FILE.png|FILE.npy|PART.npz
                         [--sampler NAME] [--steps N] [--clip | --no-clip] [sampler options]
                         [--eps-scale-b B] [--eps-scale-k K] [--class K|NAME|all|random|none] [--guidance W]
                         [--n COUNT] [--seed S] [--init-noise NOISE.npy] [--dtype float32|float64]
                         [--batch-size B] [--weights ema|model] [--precision float32|bf16-mixed]
                         [--shard k/S] [--threads N] [--quiet]
        """, """
        Draws samples from a trained checkpoint (EMA weights by default) or from the exact denoiser of a Gaussian
        mixture (gmm:SPEC.json, see README). FILE.npy holds the raw samples (N×D for vectors, N×C×H×W for images);
        FILE.png is an image grid, or a scatter plot for 2-D vectors. Every sampling setting not given follows the
        checkpoint's sample config. Sample i's x_T and every random draw of its chain come from a generator seeded by
        (--seed, i) alone, so the samples do not depend on --batch-size or on how the run is split into shards.
        Samples of a class-conditional model saved as FILE.npy get their classes beside them in FILE.labels.npy
        (1-D int64, one per row), which diffusion eval --labels reads.
        """, Options);

    public static int Run(string[] argv)
    {
        var options = Samplers.AllOptions();
        var a = new Args("sample", argv, Options);
        a.NoPositionals();
        string outPath = a.Require("out", "FILE.png|FILE.npy|PART.npz");
        string ext = Path.GetExtension(outPath).ToLowerInvariant();
        if (ext != ".png" && ext != ".npy" && ext != ".npz") throw new UsageError($"diffusion sample: --out {outPath}: expected a .png or .npy file (or a part .npz)");
        Shard? shard = a.Get("shard") is string shardText ? ParseShard(shardText) : null;
        if (shard is not null && ext != ".npz")
            throw new UsageError($"diffusion sample: --out {outPath}: --shard writes a part file; expected PART.npz (join the parts with diffusion merge)");
        if (a.Has("checkpoint") == a.Has("model")) throw new UsageError("diffusion sample: give exactly one of --checkpoint RUN_DIR|FILE and --model gmm:SPEC.json");
        foreach (var o in Options.Where(o => o.Kind == OptionKind.Negatable))
            if (a.Switch(o.Name) && a.Switch("no-" + o.Name)) throw new UsageError($"diffusion sample: --{o.Name} and --no-{o.Name} contradict each other");
        if (a.Int("threads", 1) is int threads) torch.set_num_threads(threads);
        bool quiet = a.Switch("quiet");

        // The flags as sample.KEY=value assignments; every other field follows the checkpoint.
        var set = new List<KeyValuePair<string, string>>();
        void Set(string key, string value) => set.Add(KeyValuePair.Create(key, value));
        if (a.Get("sampler") is string samplerName) Set("sampler", System.Text.Json.JsonSerializer.Serialize(samplerName));
        if (a.Int("steps", 1) is int stepsArg) Set("steps", stepsArg.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (a.Switch("clip")) Set("clip-denoised", "true");
        if (a.Switch("no-clip")) Set("clip-denoised", "false");
        foreach (var key in new[] { "eps-scale-b", "eps-scale-k" })
            if (a.Double(key) is double v) Set(key, v.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
        foreach (var (o, _) in options)
        {
            if (o.IsSwitch) { if (a.Switch(o.Key)) Set(o.Key, "true"); else if (a.Switch("no-" + o.Key)) Set(o.Key, "false"); }
            else if (a.Get(o.Key) is string v) Set(o.Key, v);
        }

        IDenoiser baseDenoiser;
        NoiseSchedule schedule;
        long[] exampleShape;
        bool isImage;
        SampleConfig? saved = null;
        TrainedModel? trained = null;
        GaussianMixtureDenoiser? exact = null;
        Tensor? reference = null;
        if (a.Get("checkpoint") is string ck)
        {
            trained = TrainedModel.Load(ck, a.Get("weights") ?? "ema");
            if (a.Get("precision") is string prec) trained.Network.Precision = Precisions.Parse(prec, "diffusion sample --precision");
            schedule = trained.Schedule;
            exampleShape = trained.ExampleShape;
            isImage = trained.IsImage;
            saved = trained.Config.Sample;
            baseDenoiser = null!;
            if (ext == ".png" && exampleShape is [2]) reference = TrainingPoints(trained.Config.Data, 2000);
        }
        else
        {
            if (a.Has("weights")) throw new UsageError("diffusion sample: --weights applies to --checkpoint only");
            if (a.Has("precision")) throw new UsageError("diffusion sample: --precision applies to --checkpoint only");
            string m = a.Get("model")!;
            if (!m.StartsWith("gmm:", StringComparison.Ordinal)) throw new UsageError($"diffusion sample: --model {m}: expected gmm:SPEC.json");
            var (gmm, schedCfg) = GaussianMixture.Load(m[4..]);
            schedule = schedCfg.Build();
            exact = new GaussianMixtureDenoiser(gmm, schedule, conditional: a.Has("class"));
            baseDenoiser = exact;
            exampleShape = [gmm.Dim];
            isImage = false;
            if (ext == ".png" && gmm.Dim == 2)
            {
                using var g0 = new Generator(1);
                reference = gmm.Sample(2000, g0);
            }
        }

        using var ownedModel = trained;          // disposed however the command ends (it also runs in-process)
        using var ownedReference = reference;
        SampleConfig cfg;
        try { cfg = SampleRun.Resolve(saved, set, schedule.T); }
        catch (ConfigException e) { throw new UsageError("diffusion sample: " + e.Message.Replace("sample.clip-denoised", "--clip").Replace("sample.", "--")); }
        // A flag of another sampler is a mistake, not something to ignore.
        foreach (var (o, owners) in options)
            if ((a.Has(o.Key) || a.Has("no-" + o.Key)) && !owners.Contains(cfg.Sampler))
                throw new UsageError($"diffusion sample: --{o.Key} applies to --sampler {string.Join(" and ", owners)} only");
        ISampler s;
        try { s = Samplers.Create(cfg, schedule, clipDefault: isImage); }
        catch (ConfigException e) { throw new UsageError("diffusion sample: " + e.Message.Replace("sample.", "--")); }
        catch (ArgumentException e) { throw new UsageError("diffusion sample: " + e.Message); }
        long seed = a.Long("seed") ?? 0;
        int classes = trained?.Config.Model.NumClasses ?? exact?.Classes ?? 0;
        string source = a.Get("checkpoint") ?? a.Get("model")!;
        if (classes == 0 && a.Has("guidance"))
            throw new UsageError($"diffusion sample: --guidance applies to a class-conditional model; {source} has model.num-classes = 0" + (exact is not null ? " (give --class to sample the mixture's components)" : ""));
        if (classes == 0 && a.Has("class"))
            throw new UsageError($"diffusion sample: --class applies to a class-conditional model; {source} has model.num-classes = 0");
        double guidance = a.Double("guidance") ?? (classes > 0 ? cfg.Guidance : 0);
        if (!(guidance >= 0) || double.IsInfinity(guidance)) throw new UsageError($"diffusion sample: --guidance {guidance}: expected a weight w ≥ 0 (0: conditional without guidance)");
        // Every draw of sample i (x_T, the chain's noise, SMD's η) comes from its own generator seeded by (seed, i).
        using var noise = NoiseSource.PerSample(seed);
        using var denoiser = trained is not null ? trained.CreateDenoiser(noise, cfg) : DenoiserStack.Build(baseDenoiser, null, EpsilonScaling.From(cfg), schedule.T);
        // Not disposed itself: it would dispose the stack, which `using` above does.
        var guided = classes > 0 ? new GuidedDenoiser(denoiser, guidance) : null;

        // x_T: from the file, or drawn from each sample's generator.
        string? dtypeArg = a.Get("dtype");
        if (dtypeArg is not null && dtypeArg != "float32" && dtypeArg != "float64") throw new UsageError($"diffusion sample: --dtype {dtypeArg}: expected float32 or float64");
        Tensor? xT = null;
        long total;
        ScalarType dtype = dtypeArg == "float64" ? ScalarType.Float64 : ScalarType.Float32;
        string? initNoiseSha = null;
        if (a.Get("init-noise") is string noisePath)
        {
            if (a.Has("n")) throw new UsageError("diffusion sample: --n and --init-noise both set the sample count; give one");
            using var raw = Npy.Read(noisePath);
            if (raw.dim() != exampleShape.Length + 1 || !raw.shape.Skip(1).SequenceEqual(exampleShape))
                throw new UserError($"--init-noise {noisePath}: expected shape (N, {string.Join(", ", exampleShape)}), got ({string.Join(", ", raw.shape)})");
            if (raw.shape[0] == 0) throw new UserError($"--init-noise {noisePath}: holds no rows; expected at least one");
            if (raw.dtype != ScalarType.Float32 && raw.dtype != ScalarType.Float64)
                throw new UserError($"--init-noise {noisePath}: expected float32 or float64 values, got {raw.dtype}");
            dtype = dtypeArg switch { "float64" => ScalarType.Float64, "float32" => ScalarType.Float32, _ => raw.dtype };
            xT = raw.to_type(dtype);
            total = raw.shape[0];
            initNoiseSha = SampleParts.FileSha256(noisePath);
        }
        else total = a.Int("n", 1) ?? 64;

        var (start, count) = (shard ?? Shard.All).Range(total);
        var indices = Enumerable.Range(0, (int)count).Select(i => start + i).ToArray();
        // The classes of all N samples (so a random choice does not depend on the split), then this shard's.
        string classArg = a.Get("class") ?? "random";
        long[]? labelRows;
        try { labelRows = guided is null ? null : SampleRun.ClassLabels(classArg, (int)total, classes, trained?.Config.Model.ClassNames, seed)[(int)start..(int)(start + count)]; }
        catch (UserError e) { xT?.Dispose(); throw new UsageError("diffusion sample: " + e.Message); }
        using var labels = labelRows is null ? null : tensor(labelRows);
        using var initRows = xT?.narrow(0, start, count);
        var bar = new ProgressBar("sample", !quiet);
        var sw = Stopwatch.StartNew();
        using var samples = SampleRun.DrawIndexed(s, (IDenoiser?)guided ?? denoiser, noise, indices, exampleShape, dtype, a.Int("batch-size", 1) ?? 256, initRows,
                                                  (d, t) => bar.Report(d, t), labels);
        bar.Finish();
        xT?.Dispose();
        if (ext == ".npz")
        {
            var manifest = new PartManifest
            {
                Source = trained is not null ? $"checkpoint {trained.Path}" : a.Get("model")!,
                Fingerprint = SampleParts.FileSha256(trained is not null ? trained.Path : a.Get("model")![4..]),
                Weights = trained is not null ? a.Get("weights") ?? "ema" : "exact",
                Sampler = SamplerIdentity(cfg, labelRows is null ? null : classArg, guidance),
                Description = Samplers.Describe(cfg),
                Seed = seed,
                Dtype = dtype == ScalarType.Float64 ? "float64" : "float32",
                Precision = trained is not null ? Precisions.Name(trained.Network.Precision) : "float32",
                ExampleShape = exampleShape,
                InitNoise = initNoiseSha,
                N = total,
                Shards = (shard ?? Shard.All).S,
                Shard = (shard ?? Shard.All).K,
                Start = start,
                Count = count,
            };
            SampleParts.Write(outPath, samples, manifest, labels);
        }
        else
        {
            int columns = labelRows is not null && classArg == "all" && shard is null ? (int)(total / classes) : 0;
            SampleOutput.Save(outPath, samples, reference, $"{total} samples, {cfg.Sampler} {s.Evaluations} steps", columns);
            if (labelRows is not null && ext == ".npy") Npy.WriteLabels(SampleRun.LabelsPath(outPath), labelRows);
        }
        string evals = exact is not null ? $", {exact.Evaluations} denoiser evaluations" : "";
        string which = shard is null ? $"{total} samples" : $"shard {shard}: samples {start}…{start + count - 1} of {total}";
        string cond = labelRows is null ? "" : $", class {classArg}, guidance w = {guidance.ToString("G", System.Globalization.CultureInfo.InvariantCulture)}";
        string labelsNote = labelRows is not null && ext == ".npy" ? $" (labels → {SampleRun.LabelsPath(outPath)})" : "";
        Console.Error.WriteLine($"sample: {which} with {Samplers.Describe(cfg)}{cond} in {sw.Elapsed.TotalSeconds:F1}s{evals} → {outPath}{labelsNote}");
        return 0;
    }

    // Up to n points of a 2-D model's training data, drawn under its samples in a PNG; null (with a note) when the data
    // cannot be read here — the picture is still drawn, without them.
    private static Tensor? TrainingPoints(Diffusion.Config.DataConfig data, int n)
    {
        try
        {
            using var all = Diffusion.Data.DataSources.Load(data);
            return all.Data.narrow(0, 0, Math.Min(n, all.Count)).to_type(ScalarType.Float32);
        }
        catch (Diffusion.UserError e)
        {
            Console.Error.WriteLine($"sample: the training data is not drawn under the samples ({e.Message})");
            return null;
        }
    }

    // The sampling settings a part's manifest compares: the sample config, and for a class-conditional model the class
    // request and the guidance weight.
    private static System.Text.Json.Nodes.JsonObject SamplerIdentity(SampleConfig cfg, string? classArg, double guidance)
    {
        var o = System.Text.Json.JsonSerializer.SerializeToNode(cfg, ConfigLoader.JsonOptions)!.AsObject();
        if (classArg is not null)
        {
            o["class"] = classArg;
            o["guidance"] = guidance;
        }
        return o;
    }

    private static Shard ParseShard(string text)
    {
        try { return Shard.Parse(text); }
        catch (UserError e) { throw new UsageError("diffusion sample: " + e.Message); }
    }
}
