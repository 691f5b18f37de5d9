using System.Diagnostics;
using Diffusion.Diagnostics;
using TorchSharp;

namespace Diffusion.Cli;

public static class DiagnoseCommand
{
    /// <summary>The diagnostics: each one's name (the command's argument) and what it measures.</summary>
    public static readonly IReadOnlyList<(string Name, string Help)> Kinds =
    [
        ("exposure-bias", """
            ε-norm gap per t between generated chains and forward samples, and the
            reconstruction error from x_t at t = 0.01T, 0.1T, 0.6T, T−1 (DDPM and DDIM)
            """),
        ("x0-bias", "per-t mean error, bias size and MSE of x̂0 on held-out data"),
        ("lipschitz", "K(t) = E‖ε̂(x_t,t) − ε̂(x_t,t−Δ)‖/Δ on a grid dense near 0 (log scale)"),
        ("error-propagation", """
            MMD² between the chain's x̂_t and forward samples q(x_t) at each t, with its
            permutation null range
            """),
        ("mixture-steps", """
            sample quality as the backward steps fall, same x_T: mixture scores (within 3σ,
            modes covered, log-likelihood) for vector data of a known Gaussian mixture; FID,
            KID, precision/recall against the held-out images, as eval computes them, for images
            """),
    ];

    public static IReadOnlyList<string> Names => Kinds.Select(d => d.Name).ToList();

    /// <summary>The options, in the order the help lists them.</summary>
    internal static readonly IReadOnlyList<OptionSpec> Options =
    [
        OptionSpec.Value("checkpoint", "RUN", "a run folder or checkpoint file (EMA weights unless --weights model)"),
        OptionSpec.Value("model", "gmm:SPEC", "the exact denoiser of a Gaussian mixture (its answers are known)"),
        OptionSpec.Value("label", "NAME", "a model's label in the plot, one per model in their order (default: the run folder's name)"),
        OptionSpec.Value("out", "DIR", "output folder (default diagnostics/NAME)"),
        OptionSpec.Value("n", "N", "examples/chains per model (default 1000 for vectors, 128 for images)"),
        OptionSpec.Value("steps", "S", "backward steps of the chains, respaced (default 100)"),
        OptionSpec.Value("sampler", null, "ddpm (ancestral, default) or ddim (η = 0) for the chains", ["ddpm", "ddim"]),
        OptionSpec.Value("grid-points", "G", "points of the time grid, dense near 0 (default 25)"),
        OptionSpec.Value("seed", "S", "seed of every random draw (default 0)"),
        OptionSpec.Value("delta", "D", "Δ of the Lipschitz probe in steps (default 1)"),
        OptionSpec.Value("permutations", "P", "permutations for the MMD null range (default 100)"),
        OptionSpec.Value("bandwidth", "RULE|VALUE", """
            the MMD kernels' squared-distance bandwidth at each t (×2^−2…2^2):
            nearest (default: the median over the N forward samples of the squared
            distance to their k-th nearest other forward sample, k = max(1, N/100),
            the local scale of q(x_t)), pooled (the mean pooled squared distance, the
            regulariser's rule; blind to errors far below the data's spread) or a
            positive number (fixed)
            """),
        OptionSpec.Value("mixture-steps", "LIST", $"the backward step counts of mixture-steps, comma-separated (default {string.Join(",", MixtureSteps.DefaultSteps)})"),
        OptionSpec.Value("features", null, """
            mixture-steps on images: the feature space of FID, KID and precision/recall, as
            diffusion eval names it: classifier:fashion-mnist | classifier:mnist (the
            project's small CNN, trained on first use and cached in .data/classifiers),
            inception-fid (weights from DIFFUSION_INCEPTION_WEIGHTS) or raw (the pixels).
            Default: eval's for the held-out data (classifier for fashion-mnist/mnist,
            inception-fid for other images)
            """, ["classifier:fashion-mnist", "classifier:mnist", "inception-fid", "raw"]),
        OptionSpec.Value("data", "SPEC", """
            held-out data instead of the default (the test split of fashion-mnist,
            another seed of toy data, fresh draws of a known mixture)
            """),
        OptionSpec.Value("weights", null, "ema (default) or model (the raw training weights) of each --checkpoint", ["ema", "model"]),
        OptionSpec.Value("batch-size", "B", "examples per forward pass (default 256)"),
        OptionSpec.Value("threads", "N", "libtorch CPU threads (default: libtorch's)"),
    ];

    public static HelpPage Help => new("""
        diffusion diagnose exposure-bias|x0-bias|lipschitz|error-propagation|mixture-steps
                           (--checkpoint RUN [--checkpoint RUN2 …] | --model gmm:SPEC.json …) [--label NAME …]
                           [--out DIR] [--n N] [--steps S] [--sampler ddpm|ddim] [--grid-points G] [--seed S]
                           [--delta D] [--permutations P] [--bandwidth nearest|pooled|VALUE]
                           [--mixture-steps 1000,100,20,10,5] [--features NAME] [--data SPEC]
                           [--weights ema|model] [--batch-size B] [--threads N]
        """, """
        Measures the problem each remedy targets (see METHODS.md) and writes NAME.csv, NAME.json and
        NAME.png into --out (default diagnostics/NAME). Several models (any mix of --checkpoint and
        --model, in order) are overlaid in one plot, labelled by --label (in the same order) or by the
        run folder's name.
        """, Options)
    {
        Before = HelpText.Entries(Kinds),
    };

    public static int Run(string[] argv)
    {
        var a = new Args("diagnose", argv, Options);
        if (a.Positionals.Count != 1 || !Names.Contains(a.Positionals[0]))
            throw new UsageError($"diffusion diagnose: expected one diagnostic name: {string.Join(", ", Names)}");
        string name = a.Positionals[0];
        if (a.Int("threads", 1) is int threads) torch.set_num_threads(threads);

        // The models, in the order given on the command line.
        var sources = new List<(string Kind, string Value)>();
        for (int i = 0; i < argv.Length; i++)
        {
            string arg = argv[i];
            foreach (var kind in new[] { "checkpoint", "model" })
            {
                if (arg == "--" + kind && i + 1 < argv.Length) sources.Add((kind, argv[i + 1]));
                else if (arg.StartsWith($"--{kind}=", StringComparison.Ordinal)) sources.Add((kind, arg[(kind.Length + 3)..]));
            }
        }
        if (sources.Count == 0) throw new UsageError("diffusion diagnose: give at least one --checkpoint RUN or --model gmm:SPEC.json");
        var labels = a.All("label");
        if (labels.Count > 0 && labels.Count != sources.Count)
            throw new UsageError($"diffusion diagnose: {labels.Count} --label for {sources.Count} models; give one per model or none");
        string weights = a.Get("weights") ?? "ema";

        var models = new List<DiagnosticModel>();
        try
        {
            for (int i = 0; i < sources.Count; i++)
            {
                var (kind, value) = sources[i];
                string? label = labels.Count > 0 ? labels[i] : null;
                if (kind == "checkpoint") models.Add(DiagnosticModel.FromCheckpoint(value, label, weights, a.Get("data")));
                else
                {
                    if (!value.StartsWith("gmm:", StringComparison.Ordinal)) throw new UsageError($"diffusion diagnose: --model {value}: expected gmm:SPEC.json");
                    models.Add(DiagnosticModel.FromMixture(value[4..], label));
                }
            }
            var dup = models.GroupBy(m => m.Label).FirstOrDefault(g => g.Count() > 1);
            if (dup is not null) throw new UsageError($"diffusion diagnose: two models are labelled '{dup.Key}'; tell them apart with --label");

            bool images = models.Any(m => m.IsImage);
            var settings = new DiagnosticSettings
            {
                N = a.Int("n", 2) ?? (images ? 128 : 1000),
                Seed = a.Long("seed") ?? 0,
                Steps = a.Int("steps", 1) ?? 100,
                Sampler = a.Get("sampler") ?? "ddpm",
                GridPoints = a.Int("grid-points", 2) ?? 25,
                BatchSize = a.Int("batch-size", 1) ?? 256,
            };
            if (settings.Sampler is not ("ddpm" or "ddim")) throw new UsageError($"diffusion diagnose: --sampler {settings.Sampler}: expected ddpm or ddim");
            if (a.Has("delta") && name != "lipschitz") throw new UsageError("diffusion diagnose: --delta applies to lipschitz only");
            if (a.Has("permutations") && name != "error-propagation") throw new UsageError("diffusion diagnose: --permutations applies to error-propagation only");
            if (a.Has("bandwidth") && name != "error-propagation") throw new UsageError("diffusion diagnose: --bandwidth applies to error-propagation only");
            if (a.Has("mixture-steps") && name != "mixture-steps") throw new UsageError("diffusion diagnose: --mixture-steps applies to mixture-steps only");
            if (a.Has("features") && name != "mixture-steps") throw new UsageError("diffusion diagnose: --features applies to mixture-steps only");
            string outDir = a.Get("out") ?? Path.Combine("diagnostics", name);

            var sw = Stopwatch.StartNew();
            void Note(DiagnosticModel m) => Console.Error.WriteLine($"diagnose {name}: {m.Label} (held-out data: {m.HeldOutSource}, n = {settings.N})");
            switch (name)
            {
                case "exposure-bias":
                    ExposureBias.Write(outDir, models.Select(m => { Note(m); return ExposureBias.Run(m, settings); }).ToList(), settings);
                    break;
                case "x0-bias":
                    X0Bias.Write(outDir, models.Select(m => { Note(m); return X0Bias.Run(m, settings); }).ToList(), settings);
                    break;
                case "lipschitz":
                {
                    double delta = a.Double("delta") ?? 1.0;
                    LipschitzProbe.Write(outDir, models.Select(m => { Note(m); return LipschitzProbe.Run(m, settings, delta); }).ToList(), settings);
                    break;
                }
                case "error-propagation":
                {
                    int perms = a.Int("permutations", 0) ?? 100;
                    var bw = ParseBandwidth(a.Get("bandwidth") ?? "nearest");
                    ErrorPropagation.Write(outDir, models.Select(m => { Note(m); return ErrorPropagation.Run(m, settings, perms, bw); }).ToList(), settings, perms);
                    break;
                }
                case "mixture-steps":
                {
                    int[]? steps = a.Get("mixture-steps") is string list ? ParseSteps(list) : null;
                    if (!images)
                    {
                        if (a.Has("features")) throw new UsageError("diffusion diagnose: --features applies to image models (vector data is scored against its known mixture)");
                        MixtureSteps.Write(outDir, models.Select(m => { Note(m); return MixtureSteps.Run(m, settings, steps); }).ToList(), settings);
                        break;
                    }
                    if (models.FirstOrDefault(m => !m.IsImage) is { } vector)
                        throw new UsageError($"diffusion diagnose: mixture-steps: {vector.Label} is a vector model, {models.First(m => m.IsImage).Label} an image model; diagnose them separately");
                    // The held-out images' features, once for every model and step count.
                    var first = models[0];
                    var featureSettings = new Diffusion.Metrics.Features.FeatureSettings
                    {
                        DataDir = first.DataDir, BatchSize = settings.BatchSize, Log = s => Console.Error.WriteLine($"diagnose {name}: {s}"),
                    };
                    using var reference = MixtureSteps.ImageReference.For(first, settings, a.Get("features"), featureSettings);
                    Console.Error.WriteLine($"diagnose {name}: {reference.Features} features of {reference.Set.Count} held-out images ({reference.Source}) in {sw.Elapsed.TotalSeconds:F1}s");
                    MixtureSteps.WriteImages(outDir, models.Select(m => { Note(m); return MixtureSteps.RunImages(m, settings, reference, steps); }).ToList(), settings, reference);
                    break;
                }
            }
            Console.Error.WriteLine($"diagnose {name}: {models.Count} model(s) in {sw.Elapsed.TotalSeconds:F1}s → {Path.Combine(outDir, name)}.csv, .json, .png");
            return 0;
        }
        finally
        {
            foreach (var m in models) m.Dispose();
        }
    }

    private static Diffusion.Metrics.MmdBandwidth ParseBandwidth(string text)
    {
        try { return Diffusion.Metrics.MmdBandwidth.Parse(text); }
        catch (Diffusion.UserError) { throw new UsageError($"diffusion diagnose: --bandwidth {text}: expected nearest, pooled or a positive number (a squared distance)"); }
    }

    private static int[] ParseSteps(string list)
    {
        try
        {
            var v = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
            if (v.Length == 0 || v.Any(k => k < 1)) throw new FormatException();
            return v;
        }
        catch (FormatException) { throw new UsageError($"diffusion diagnose: --mixture-steps {list}: expected positive integers separated by commas, e.g. 1000,100,20,10,5"); }
    }
}
