using System.Diagnostics;
using Diffusion.Data;
using Diffusion.Metrics;
using Diffusion.Metrics.Features;
using TorchSharp;

namespace Diffusion.Cli;

public static class EvalCommand
{
    /// <summary>The options, in the order the help lists them.</summary>
    internal static readonly IReadOnlyList<OptionSpec> Options =
    [
        OptionSpec.Value("samples", null, """
            an .npy array (N×D vectors or N×C×H×W images in [−1, 1], as diffusion sample
            writes), a folder of .npy files or of PNG/JPEG images, or a data spec
            (e.g. fashion-mnist, for the real-versus-real baseline)
            """),
        OptionSpec.Value("reference", null, """
            a data spec (toy:gmm-grid, gmm:SPEC.json, fashion-mnist:test, images:DIR, npy:FILE, …)
            or reference statistics saved with --save-reference (pytorch-fid's .npz
            statistics work for FID)
            """),
        OptionSpec.Value("features", null, """
            inception-fid: the FID Inception-v3 (needs --inception-weights);
            classifier:fashion-mnist | classifier:mnist: the project's small CNN, trained on
            first use and cached; raw: the vectors themselves. Default: classifier for
            fashion-mnist/mnist, inception-fid for other images, raw for vectors
            """, ["inception-fid", "classifier:fashion-mnist", "classifier:mnist", "raw"]),
        OptionSpec.Value("metrics", null, """
            any of fid, kid (unbiased, cubic kernel, subsets), pr (precision/recall, k-NN),
            mmd (unbiased MMD², RBF kernels) — default all
            """),
        OptionSpec.Value("format", null, "text (default) or json (one JSON object on stdout)", ["text", "json"]),
        OptionSpec.Value("save-reference", null, "also save the reference's features and statistics to reuse as --reference"),
        OptionSpec.Value("n", "N", """
            use the first N samples (default all); of a data spec, a random
            subset of N drawn with --seed (data files may be sorted by class)
            """),
        OptionSpec.Value("reference-n", "N", "use at most N reference examples, a random subset (default 10000)"),
        OptionSpec.Value("inception-weights", null, """
            pytorch-fid's pt_inception-2015-12-05-6726825d.pth as it is, or FILE.npz
            converted from it (or the DIFFUSION_INCEPTION_WEIGHTS environment variable)
            """),
        OptionSpec.Value("classifier-cache", "DIR", "where classifier weights are cached (default .data/classifiers)"),
        OptionSpec.Value("data-dir", "DIR", "folder of a data spec's files (Fashion-MNIST IDX, mnist digits)"),
        OptionSpec.Value("kid-subsets", "S", "KID's number of subsets (default 100)"),
        OptionSpec.Value("kid-subset-size", "M", "KID's rows per subset (default 1000)"),
        OptionSpec.Value("k", "K", "neighbours for precision/recall (default 3)"),
        OptionSpec.Value("mmd-n", "N", "rows of each set used for MMD² (default 2000)"),
        OptionSpec.Value("seed", "S", "seed of the random subsets (default 0)"),
        OptionSpec.Switch("labels", """
            samples of a class-conditional model: read the class each was asked for from
            FILE.labels.npy beside FILE.npy (diffusion sample writes it), or from a merged
            FILE.npz (diffusion merge keeps them in it), and add per-class FID
            (against the reference examples of that class; the reference must be a labelled data
            spec) and, with classifier features, the classifier's accuracy on the samples (the
            fraction classified as the class asked for)
            """),
        OptionSpec.Value("batch-size", "B", "examples per forward pass of the feature extractor (default 32)"),
        OptionSpec.Value("threads", "N", "libtorch CPU threads (default: libtorch's)"),
        OptionSpec.Switch("quiet", "no progress bars or messages on stderr"),
        OptionSpec.Value("shard", "k/S", "with --save-partial: only shard k of S of the samples (see below)"),
        OptionSpec.Value("save-partial", "PARTIAL.npz", "write, instead of scores, a partial for --merge (see below)"),
        OptionSpec.Switch("merge", "score the partials given as arguments, PARTIAL.npz... (see below)"),
    ];

    public static HelpPage Help => new("""
        diffusion eval --samples FILE.npy|DIR --reference DATA_SPEC|STATS.npz
                       [--features inception-fid|classifier:DATASET|raw] [--metrics fid,kid,pr,mmd]
                       [--format text|json] [--save-reference STATS.npz] [--n N] [--reference-n N]
                       [--inception-weights FILE.pth|FILE.npz] [--classifier-cache DIR] [--data-dir DIR]
                       [--kid-subsets S] [--kid-subset-size M] [--k K] [--mmd-n N] [--seed S]
                       [--batch-size B] [--threads N] [--labels] [--quiet]
                       [--shard k/S] [--save-partial PARTIAL.npz]
        diffusion eval --merge PARTIAL.npz... --reference DATA_SPEC|STATS.npz [--features …] [metric options]
        """, """
        Scores samples against reference data in a feature space, and prints each score with the
        feature extractor and the sample counts it was computed with.
        """, Options)
    {
        After = """
            More than one machine: --save-partial PARTIAL.npz writes, instead of scores, the features of the samples (all, or
            with --shard k/S the contiguous rows ⌊k·N/S⌋ … ⌊(k+1)·N/S⌋ − 1; a part file of sample --shard gives its own rows),
            their float64 sum and sum of outer products, with the extractor's and the reference's identities. --merge joins
            the partials (same extractor, same reference, every row once) and scores them: the same numbers as one process.

            Mixture references (toy:gmm-grid, gmm:SPEC.json) also print the fraction of samples within 3σ of
            a mode, the modes covered and the mean log-likelihood under the true mixture.
            """,
    };

    public static int Run(string[] argv)
    {
        var a = new Args("eval", argv, Options);
        bool merge = a.Switch("merge");
        if (merge)
        {
            if (a.Positionals.Count == 0) throw new UsageError("diffusion eval: --merge needs the partial files (PARTIAL.npz ...) written by eval --save-partial");
            foreach (var o in new[] { "samples", "shard", "save-partial", "save-reference", "n" })
                if (a.Has(o)) throw new UsageError($"diffusion eval: --{o} does not apply to --merge (the partials hold the samples' features)");
        }
        else a.NoPositionals();
        string samplesPath = merge ? a.Positionals[0] : a.Require("samples", "FILE.npy|DIR");
        Diffusion.Sampling.Shard? shard = null;
        if (a.Get("shard") is string shardText)
        {
            try { shard = Diffusion.Sampling.Shard.Parse(shardText); }
            catch (UserError e) { throw new UsageError("diffusion eval: " + e.Message); }
            if (!a.Has("save-partial")) throw new UsageError("diffusion eval: --shard needs --save-partial PARTIAL.npz (a shard's scores alone mean nothing; merge the partials with --merge)");
        }
        string? partialPath = a.Get("save-partial");
        if (partialPath is not null && !partialPath.EndsWith(".npz", StringComparison.OrdinalIgnoreCase))
            throw new UsageError($"diffusion eval: --save-partial {partialPath}: expected a .npz file");
        string referenceArg = a.Require("reference", "DATA_SPEC|STATS.npz");
        string format = a.Get("format") ?? "text";
        if (format is not ("text" or "json")) throw new UsageError($"diffusion eval: --format {format}: expected text or json");
        var metrics = (a.Get("metrics") ?? string.Join(",", EvalOptions.MetricNames)).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var m in metrics)
            if (!EvalOptions.MetricNames.Contains(m)) throw new UsageError($"diffusion eval: --metrics: unknown metric '{m}'; expected any of {string.Join(",", EvalOptions.MetricNames)}");
        if (a.Int("threads", 1) is int threads) torch.set_num_threads(threads);
        bool quiet = a.Switch("quiet");
        void Log(string s) { if (!quiet) Console.Error.WriteLine(s); }
        var options = new EvalOptions
        {
            Metrics = metrics,
            KidSubsets = a.Int("kid-subsets", 1) ?? 100,
            KidSubsetSize = a.Int("kid-subset-size", 2) ?? 1000,
            K = a.Int("k", 1) ?? 3,
            MmdMax = a.Int("mmd-n", 2) ?? 2000,
            Seed = a.Long("seed") ?? 0,
        };
        var settings = new FeatureSettings
        {
            DataDir = a.Get("data-dir"),
            InceptionWeights = a.Get("inception-weights"),
            ClassifierCache = a.Get("classifier-cache"),
            BatchSize = a.Int("batch-size", 1) ?? 32,
            Log = Log,
        };
        var sw = Stopwatch.StartNew();

        // The reference: saved statistics, or data loaded from a spec.
        bool isStats = referenceArg.EndsWith(".npz", StringComparison.OrdinalIgnoreCase) && !referenceArg.Contains(':');
        ReferenceSet? saved = isStats ? ReferenceSet.Load(referenceArg) : null;
        Dataset? refData = null;
        if (saved is null)
        {
            int refN = a.Int("reference-n", 2) ?? 10000;
            refData = SampleSet.LoadReference(referenceArg, settings.DataDir, samplesPath, refN, options.Seed);
        }
        else if (a.Has("reference-n")) throw new UsageError("diffusion eval: --reference-n applies to a data spec, not to saved statistics");

        long[]? refShape = saved?.ExampleShape ?? refData?.ExampleShape;
        bool refIsImage = refShape is { Length: 3 };
        string features = a.Get("features") ?? saved?.Features ?? FeatureExtractors.DefaultFor(referenceArg, refIsImage);
        if (saved?.Features is string sf && sf != features)
            throw new UserError($"--reference {referenceArg}: holds {sf} features, not {features}; compute a reference in {features} features from data");

        bool labels = a.Switch("labels");
        if (labels)
        {
            if (merge || shard is not null || partialPath is not null) throw new UsageError("diffusion eval: --labels scores a whole sample file; it does not combine with --shard, --save-partial or --merge");
            if (!File.Exists(samplesPath) || !(samplesPath.EndsWith(".npy", StringComparison.OrdinalIgnoreCase) || samplesPath.EndsWith(".npz", StringComparison.OrdinalIgnoreCase)))
                throw new UsageError($"diffusion eval: --labels reads FILE.labels.npy beside --samples FILE.npy, or the labels in a merged FILE.npz; {samplesPath} is neither");
            if (refData?.Labels is null)
                throw new UserError($"--labels: the reference {referenceArg} has no labels; per-class FID needs a labelled data spec (e.g. fashion-mnist:test), not {(saved is not null ? "saved statistics" : "unlabelled data")}");
        }
        // The samples: all of them, a shard's rows of them, or a part file of sample --shard (its own rows); none for --merge.
        long totalN = 0, start = 0;
        torch.Tensor? partLabels = null;
        torch.Tensor LoadSamples()
        {
            if (merge) return torch.zeros(0);
            if (samplesPath.EndsWith(".npz", StringComparison.OrdinalIgnoreCase) && File.Exists(samplesPath))
            {
                if (shard is not null || a.Has("n")) throw new UsageError($"diffusion eval: --samples {samplesPath} is a part of a sharded run; it holds its own rows (no --shard or --n)");
                var (part, m, pl) = Diffusion.Sampling.SampleParts.ReadWithLabels(samplesPath);
                partLabels = pl;
                if (labels && m.Shards != 1)
                {
                    part.Dispose(); pl?.Dispose();
                    throw new UsageError($"diffusion eval: --labels scores a whole sample file; {samplesPath} is shard {m.Shard} of {m.Shards} (join the parts with diffusion merge first)");
                }
                (totalN, start) = (m.N, m.Start);
                shard = new Diffusion.Sampling.Shard(m.Shard, m.Shards);
                return part;
            }
            var all = SampleSet.Load(samplesPath, a.Int("n", 2), refShape, settings.DataDir, options.Seed);
            totalN = all.shape[0];
            if (shard is not { } sh) return all;
            var (s0, count) = sh.Range(totalN);
            start = s0;
            using (all) return all.narrow(0, s0, count).clone();
        }
        using var samples = LoadSamples();
        long[]? sampleLabels = null;
        if (labels && partLabels is not null)
            using (partLabels) sampleLabels = partLabels.data<long>().ToArray();
        else if (labels && samplesPath.EndsWith(".npz", StringComparison.OrdinalIgnoreCase))
            throw new UserError($"--labels: {samplesPath} holds no labels; they are written for samples of a class-conditional model");
        else if (labels)
        {
            string labelsPath = Sampling.SampleRun.LabelsPath(samplesPath);
            if (!File.Exists(labelsPath)) throw new UserError($"--labels: {labelsPath} not found; diffusion sample writes it beside FILE.npy for a class-conditional model");
            var all = Npy.ReadShape(samplesPath)[0];
            using var l = Npy.ReadLabels(labelsPath, all);
            sampleLabels = l.narrow(0, 0, samples.shape[0]).data<long>().ToArray();
        }
        else partLabels?.Dispose();
        if (!merge && refShape is not null && features != "inception-fid" && !samples.shape.Skip(1).SequenceEqual(refShape))
            throw new UserError($"--samples {samplesPath}: examples of shape [{string.Join(", ", samples.shape.Skip(1))}], the reference has [{string.Join(", ", refShape)}]");

        using var extractor = FeatureExtractors.Create(features, settings);
        var bar = new ProgressBar("features", !quiet);
        ReferenceSet reference;
        if (saved is not null) reference = saved;
        else
        {
            Log($"eval: {features} features of {refData!.Count} reference examples ({referenceArg})");
            using var rows = extractor.Extract(refData.Data, (d, t) => bar.Report(d, t));
            bar.Finish();
            reference = ReferenceSet.FromFeatures(features, referenceArg, rows, refData.Mixture, refData.ExampleShape);
            if (a.Get("save-reference") is string savePath)
            {
                reference.Save(savePath);
                Log($"eval: reference features and statistics → {savePath}");
            }
        }
        if (saved is not null && a.Has("save-reference")) throw new UsageError("diffusion eval: --save-reference saves a reference computed from data; --reference is already saved statistics");

        EvalResult result;
        if (merge)
        {
            var (merged, mergedRaw, stats, first) = EvalPartials.Merge(a.Positionals, extractor.Identity, EvalPartials.ReferenceIdentity(reference));
            using (merged)
            using (mergedRaw)
            using (stats)
            {
                Log($"eval: {a.Positionals.Count} partials, {merged.shape[0]} samples ({first.Samples}, …)");
                result = Evaluation.Run(features, merged, reference, options, mergedRaw, stats);
            }
        }
        else
        {
            Log($"eval: {features} features of {samples.shape[0]} samples ({samplesPath}{(shard is { } sh0 ? $", shard {sh0}: rows {start}…{start + samples.shape[0] - 1} of {totalN}" : "")})");
            var bar2 = new ProgressBar("features", !quiet);
            using var sampleFeatures = extractor.Extract(samples, (d, t) => bar2.Report(d, t));
            bar2.Finish();
            using var raw = samples.dim() == 2 ? samples.alias() : samples.reshape(samples.shape[0], -1);
            if (partialPath is not null)
            {
                var sh = shard ?? Diffusion.Sampling.Shard.All;
                EvalPartials.Write(partialPath, sampleFeatures, samples.dim() == 2 ? raw : null, new PartialManifest
                {
                    Features = features, FeatureIdentity = extractor.Identity,
                    Reference = referenceArg, ReferenceIdentity = EvalPartials.ReferenceIdentity(reference),
                    Samples = samplesPath, N = totalN, Shards = sh.S, Shard = sh.K, Start = start, Count = samples.shape[0],
                });
                Log($"eval: partial (features, sums, rows {start}…{start + samples.shape[0] - 1} of {totalN}) → {partialPath} in {sw.Elapsed.TotalSeconds:F1}s");
                reference.Dispose();
                refData?.Dispose();
                return 0;
            }
            result = Evaluation.Run(features, sampleFeatures, reference, options, raw);
            if (sampleLabels is not null)
            {
                var refLabels = refData!.Labels!.data<long>().ToArray();
                int classes = (int)Math.Max(refLabels.Max() + 1, refData.ClassCount);
                var names = refData.ClassNames;
                long[]? predicted = null;
                if (extractor is ClassifierFeatures clf)
                {
                    int clfClasses = clf.Network.Classes;
                    if (sampleLabels.Any(l => l < 0 || (l >= clfClasses && l != classes)))
                        throw new UserError($"--labels: {Sampling.SampleRun.LabelsPath(samplesPath)} asks for class {sampleLabels.First(l => l < 0 || l >= clfClasses)}; {clf.Name} knows classes 0 … {clfClasses - 1}");
                    predicted = clf.Classify(samples);
                }
                else Log($"eval: no classifier accuracy with {features} features (use --features classifier:DATASET)");
                result.Classes = ClassScores.Compute(sampleFeatures, sampleLabels, reference.Rows, refLabels, predicted, classes, names, extractor.Name);
            }
        }
        if (format == "json") Console.WriteLine(result.ToJson().ToJsonString());
        else Console.Write(result.ToText());
        Log($"eval: done in {sw.Elapsed.TotalSeconds:F1}s");
        reference.Dispose();
        refData?.Dispose();
        return 0;
    }
}
