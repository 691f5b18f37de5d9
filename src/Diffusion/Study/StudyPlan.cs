using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Diffusion.Config;
using Diffusion.Metrics;
using Diffusion.Sampling;
using Diffusion.Training;

namespace Diffusion.Study;

/// <summary>One arm of a study: its name, the remedies (<c>train --remedy</c> names) and <c>--set</c> assignments it adds to the plan's, its seeds.</summary>
public sealed record StudyVariant(string Name, IReadOnlyList<string> Remedies, IReadOnlyList<string> Sets, IReadOnlyList<long> Seeds);

/// <summary>
/// A sampler of the plan: its label (a column of the report), the <c>sample.KEY=value</c> assignments it stands for (sampler,
/// steps and any option <c>diffusion sample</c> takes), and whether it runs at the final checkpoint only.
/// </summary>
public sealed record StudySampler(string Label, IReadOnlyList<KeyValuePair<string, string>> Assignments, bool FinalOnly);

/// <summary>One value of a sampling-only sweep: its label and the extra <c>sample.KEY=value</c> assignments (e.g. eps-scale-b).</summary>
public sealed record SweepPoint(string Label, IReadOnlyList<KeyValuePair<string, string>> Assignments);

/// <summary>
/// A sampling-only sweep: extra evaluations of some variants' checkpoints with each point's options on top of the listed
/// samplers; no extra training. With <paramref name="FinalOnly"/> it runs at the final checkpoint only, otherwise wherever
/// its samplers run; with <paramref name="Seeds"/> only in the jobs of those seeds (null: every seed of its variants);
/// with <paramref name="N"/> on that many samples (the first N of the plan's x_T) instead of the plan's n.
/// </summary>
public sealed record StudySweep(string Name, IReadOnlyList<string> Variants, IReadOnlyList<string> Samplers, IReadOnlyList<SweepPoint> Points, bool FinalOnly = false,
                               IReadOnlyList<long>? Seeds = null, int? N = null)
{
    /// <summary>Whether the sweep runs in the job of <paramref name="variant"/> with <paramref name="seed"/> (null: any of its seeds).</summary>
    public bool AppliesTo(string variant, long? seed) => Variants.Contains(variant) && (seed is null || Seeds is null || Seeds.Contains(seed.Value));
}

/// <summary>
/// A claim of a paper the study tests (<c>[[claims]]</c>): the row <see cref="Row"/> of <see cref="Variant"/> at
/// <see cref="Step"/> is better on <see cref="Metric"/> than the row <see cref="AgainstRow"/> of <see cref="Against"/> at
/// <see cref="AgainstStep"/>. <see cref="Effect"/> is the paper's relative change of the metric (variant / against − 1,
/// e.g. −0.26 for an FID falling 14.21 → 10.54), null when the paper gives no size, 0 for a claim of "no worse".
/// </summary>
public sealed record StudyClaim(string Text, string Variant, string Row, long Step, string Against, string AgainstRow, long AgainstStep,
                                string Metric, double? Effect);

/// <summary>How every evaluation draws and scores its samples.</summary>
public sealed record StudyEvaluation
{
    /// <summary>Samples per evaluation.</summary>
    public int N { get; init; } = 2000;
    /// <summary>The sample seed, the same for every variant: sample i starts from the same x_T everywhere (<see cref="NoiseSource.PerSample"/>).</summary>
    public long Seed { get; init; } = 1;
    /// <summary>A data spec (e.g. fashion-mnist:test, toy:gmm-grid) or reference statistics saved by <c>eval --save-reference</c>.</summary>
    public string Reference { get; init; } = "";
    /// <summary>At most this many reference examples (a seeded random subset, as <c>eval --reference-n</c>).</summary>
    public int ReferenceN { get; init; } = 10000;
    public string Features { get; init; } = "raw";
    public IReadOnlyList<string> Metrics { get; init; } = ["fid"];
    /// <summary>Rows per sampling batch.</summary>
    public int BatchSize { get; init; } = 256;
    public int KidSubsets { get; init; } = 100;
    public int KidSubsetSize { get; init; } = 1000;
    public int K { get; init; } = 3;
    public int MmdN { get; init; } = 2000;
    /// <summary>Mixture references: a mode counts as covered when at least this many samples lie within 3σ of it.</summary>
    public int MixtureMinPerMode { get; init; } = 1;
    public string? DataDir { get; init; }
    public string? ClassifierCache { get; init; }
    public string? InceptionWeights { get; init; }
    /// <summary>
    /// Real examples scored as if they were samples (n of them, against the same reference, in the same features): the
    /// real-versus-real floor of every metric at this n. A data spec; null: the base config's training data when it is
    /// not the reference's spec (e.g. fashion-mnist against fashion-mnist:test), else no floor. Not part of an
    /// evaluation's identity (it changes no sample's score).
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string? Floor { get; init; }
}

/// <summary>One evaluation of a job: a checkpoint step, a sampler, and for sweeps the sweep and its point.</summary>
public sealed record EvalTask(long Step, StudySampler Sampler, StudySweep? Sweep, SweepPoint? Point)
{
    /// <summary>The row label: the sampler's, with the sweep point's after it.</summary>
    public string Label => Point is null ? Sampler.Label : $"{Sampler.Label} {Sweep!.Name}={Point.Label}";

    /// <summary>The file-name key of its cached result.</summary>
    public string Key => StudyPlan.Safe($"{Step:D7}-{Sampler.Label}" + (Point is null ? "" : $"-{Sweep!.Name}-{Point.Label}"));

    /// <summary>The sample assignments: the sampler's, then the sweep point's.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Assignments => Point is null ? Sampler.Assignments : [.. Sampler.Assignments, .. Point.Assignments];

    /// <summary>Its own sample count (a sweep's <c>n</c>), or null for the plan's.</summary>
    public int? N => Sweep?.N;
}

/// <summary>A job of a study: one variant trained with one seed, then evaluated.</summary>
public sealed record StudyJob(StudyVariant Variant, long Seed)
{
    public string Id => $"{Variant.Name}-seed{Seed.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>
/// A study plan (<c>diffusion study PLAN.toml</c>): a base config and common <c>--set</c>s, the training budget and the
/// checkpoints evaluated, variants × seeds (the jobs), samplers, sampling-only sweeps and the evaluation. Read from TOML
/// with every key checked (an unknown key is one line naming it), and validated as a whole — every variant's config,
/// every sampler and sweep on every variant — before anything is trained (<see cref="Validate"/>).
/// </summary>
public sealed class StudyPlan
{
    public required string Path { get; init; }
    public required string Name { get; init; }
    /// <summary>As <c>train --config</c>: a preset name or a .toml/.json file (relative to the plan's folder).</summary>
    public required string Config { get; init; }
    public required IReadOnlyList<string> Sets { get; init; }
    /// <summary>The training budget: steps of every job.</summary>
    public required long Steps { get; init; }
    /// <summary>Training steps at which checkpoints are evaluated, increasing; the last is <see cref="Steps"/>.</summary>
    public required IReadOnlyList<long> EvalSteps { get; init; }
    public required IReadOnlyList<long> Seeds { get; init; }
    public required string Baseline { get; init; }
    public required IReadOnlyList<StudyVariant> Variants { get; init; }
    public required IReadOnlyList<StudySampler> Samplers { get; init; }
    public required IReadOnlyList<StudySweep> Sweeps { get; init; }
    public required StudyEvaluation Evaluation { get; init; }
    /// <summary>The metric of the report's comparisons and plot (a key of the evaluation JSON, e.g. fid).</summary>
    public required string PrimaryMetric { get; init; }
    /// <summary>
    /// The sampler label whose samples at the final checkpoint are kept in the result files (<c>[report] samples</c>), the
    /// first <see cref="SamplesN"/> of them, for the report to draw side by side; null: none kept.
    /// </summary>
    public string? SamplesSampler { get; init; }
    /// <summary>How many samples <see cref="SamplesSampler"/> keeps (<c>[report] samples-n</c>, default 64).</summary>
    public int SamplesN { get; init; } = 64;

    /// <summary>How many of an evaluation's samples its result keeps: <see cref="SamplesN"/> for the kept sampler's plain row at the final checkpoint, else 0.</summary>
    public int Keeps(EvalTask task) => SamplesSampler is { } l && task.Sweep is null && task.Step == Steps && task.Sampler.Label == l ? SamplesN : 0;

    /// <summary>The papers' claims the report gives a verdict on (none by default).</summary>
    public IReadOnlyList<StudyClaim> Claims { get; init; } = [];
    /// <summary>Per-model diagnostics run on final checkpoints (none by default).</summary>
    public IReadOnlyList<StudyDiagnostic> Diagnostics { get; init; } = [];

    /// <summary>The diagnostics a job runs after its evaluations: those of its seed that list its variant, and all of its seed for the baseline.</summary>
    public IReadOnlyList<StudyDiagnostic> DiagnosticsFor(StudyJob job) =>
        Diagnostics.Where(d => d.Seed == job.Seed && (job.Variant.Name == Baseline || d.Variants.Contains(job.Variant.Name))).ToList();

    /// <summary>Result keys the report knows, with whether lower is better.</summary>
    public static readonly IReadOnlyDictionary<string, bool> LowerIsBetter = new Dictionary<string, bool>
    {
        ["fid"] = true, ["kid"] = true, ["mmd2"] = true, ["precision"] = false, ["recall"] = false,
        ["mixture_within_3sigma"] = false, ["mixture_modes_covered"] = false, ["mixture_log_likelihood"] = false,
    };

    /// <summary>
    /// The jobs in the order workers take them: the first seed of every variant that has several, then their second
    /// seed, and so on (so that a partial study already covers every variant, and then gets the seed spread its verdicts
    /// need); variants with a single seed (side sweeps, which give no spread) come last, in plan order.
    /// </summary>
    public IReadOnlyList<StudyJob> Jobs()
    {
        var jobs = new List<StudyJob>();
        var multi = Variants.Where(v => v.Seeds.Count > 1).ToList();
        int most = multi.Count == 0 ? 0 : multi.Max(v => v.Seeds.Count);
        for (int i = 0; i < most; i++)
            foreach (var v in multi)
                if (i < v.Seeds.Count) jobs.Add(new StudyJob(v, v.Seeds[i]));
        foreach (var v in Variants.Where(v => v.Seeds.Count == 1))
            jobs.Add(new StudyJob(v, v.Seeds[0]));
        return jobs;
    }

    public StudyVariant Variant(string name) => Variants.First(v => v.Name == name);

    /// <summary>The evaluations of a job, in order: per checkpoint, the samplers (final-only ones at the last), then the sweeps on it.</summary>
    public IReadOnlyList<EvalTask> Tasks(StudyJob job) => Tasks(job.Variant, job.Seed);

    /// <summary>The evaluations of a variant's job with <paramref name="seed"/> (null: with the sweeps of every seed).</summary>
    public IReadOnlyList<EvalTask> Tasks(StudyVariant variant, long? seed = null)
    {
        var tasks = new List<EvalTask>();
        foreach (var step in EvalSteps)
        {
            bool final = step == EvalSteps[^1];
            foreach (var s in Samplers.Where(s => final || !s.FinalOnly)) tasks.Add(new EvalTask(step, s, null, null));
            foreach (var sweep in Sweeps.Where(w => w.AppliesTo(variant.Name, seed) && (final || !w.FinalOnly)))
                foreach (var s in Samplers.Where(s => sweep.Samplers.Contains(s.Label) && (final || !s.FinalOnly)))
                    foreach (var p in sweep.Points) tasks.Add(new EvalTask(step, s, sweep, p));
        }
        return tasks;
    }

    /// <summary>What a job asks of <c>train</c>: the base config, the variant's remedies, the plan's then the variant's <c>--set</c>s, the budget and the seed.</summary>
    public TrainRequest Request(StudyJob job) => new()
    {
        Config = Config, Remedies = job.Variant.Remedies, Sets = [.. Sets, .. job.Variant.Sets], Steps = (int)Steps, Seed = job.Seed,
    };

    /// <summary>
    /// What an evaluation's result depends on besides the checkpoint: its sample assignments and the evaluation settings.
    /// A cached evaluation is used only when it was made with the same.
    /// </summary>
    public string Identity(EvalTask task)
    {
        var o = new JsonObject
        {
            ["sample"] = new JsonArray(task.Assignments.Select(a => (JsonNode)$"{a.Key}={a.Value}").ToArray()),
            ["evaluation"] = JsonSerializer.SerializeToNode(Evaluation with { N = task.N ?? Evaluation.N, DataDir = null, ClassifierCache = null, InceptionWeights = null }),
        };
        if (Keeps(task) is int k and > 0) o["keep"] = k;   // only the kept row's identity changes with [report] samples
        return o.ToJsonString();
    }

    /// <summary>The resolved run config of a job: the base config, the variant's remedies, the plan's then the variant's <c>--set</c>s, the budget and the seed.</summary>
    public RunConfig ConfigFor(StudyJob job)
    {
        try { return TrainingRun.NewConfig(Request(job)); }
        catch (UserError e) { throw new UserError($"{Path}: variant '{job.Variant.Name}': {e.Message}"); }
    }

    /// <summary>
    /// Checks the whole plan without training: every variant's config (each seed), every sampler and sweep point resolved
    /// against it (as <c>diffusion sample</c> would), the metrics, features and the primary metric. The first problem is
    /// one <see cref="UserError"/> naming the plan and the input.
    /// </summary>
    public void Validate()
    {
        foreach (var v in Variants)
            foreach (var seed in v.Seeds)
            {
                var cfg = ConfigFor(new StudyJob(v, seed));
                if (cfg.Model.Conditional) throw new UserError($"{Path}: variant '{v.Name}': class-conditional models (model.num-classes) are not supported by diffusion study");
                var schedule = cfg.Schedule.Build();
                foreach (var task in Tasks(v, seed).DistinctBy(t => t.Label))
                {
                    string what = task.Point is null ? $"sampler '{task.Sampler.Label}'" : $"sweep '{task.Sweep!.Name}' point '{task.Point.Label}' with sampler '{task.Sampler.Label}'";
                    try
                    {
                        var sc = SampleRun.Resolve(cfg.Sample, task.Assignments, schedule.T);
                        Sampling.Samplers.Create(sc, schedule, clipDefault: cfg.Model.Type == "unet");
                    }
                    catch (Exception e) when (e is UserError or ArgumentException)
                    {
                        throw new UserError($"{Path}: {what} on variant '{v.Name}': {e.Message}");
                    }
                }
            }
        for (int i = 0; i < Claims.Count; i++)
        {
            var c = Claims[i];
            foreach (var (variant, row, step, key) in new[] { (c.Variant, c.Row, c.Step, "row"), (c.Against, c.AgainstRow, c.AgainstStep, "against-row") })
                if (!Tasks(Variant(variant)).Any(t => t.Step == step && t.Label == row))
                    throw new UserError($"{Path}: claims[{i}].{key}: variant '{variant}' has no row '{row}' at step {step}; expected a sampler label (or 'LABEL SWEEP=POINT' of a sweep) evaluated there");
        }
        foreach (var m in Evaluation.Metrics)
            if (!MetricRegistry.Names.Contains(m)) throw new UserError($"{Path}: evaluation.metrics: unknown metric '{m}'; expected any of {string.Join(", ", MetricRegistry.Names)}");
        var f = Evaluation.Features;
        if (f != "raw" && f != "inception-fid" && !f.StartsWith("classifier:", StringComparison.Ordinal))
            throw new UserError($"{Path}: evaluation.features: expected raw, inception-fid or classifier:DATASET, got '{f}'");
        if (!LowerIsBetter.ContainsKey(PrimaryMetric))
            throw new UserError($"{Path}: report.metric: expected one of {string.Join(", ", LowerIsBetter.Keys)}, got '{PrimaryMetric}'");
        bool mixtureMetric = PrimaryMetric.StartsWith("mixture_", StringComparison.Ordinal);
        string owner = PrimaryMetric switch { "precision" or "recall" => "pr", "mmd2" => "mmd", _ => PrimaryMetric };
        if (!mixtureMetric && !Evaluation.Metrics.Contains(owner))
            throw new UserError($"{Path}: report.metric: {PrimaryMetric} is not computed; add '{owner}' to evaluation.metrics");
    }

    /// <summary>A name as a file-name part: letters, digits and <c>. _ - = +</c> kept, anything else '_'.</summary>
    public static string Safe(string s) => new(s.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or '=' or '+' ? c : '_').ToArray());

    // ---------------------------------------------------------------- reading

    /// <summary>Reads a plan file (TOML); keys are checked here, values by <see cref="Validate"/>.</summary>
    public static StudyPlan Load(string path)
    {
        if (!File.Exists(path)) throw new UserError($"{path}: study plan not found");
        JsonObject root;
        try { root = ConfigLoader.ParseTree(File.ReadAllText(path), "toml", path); }
        catch (ConfigException err) { throw new UserError(err.Message); }
        var r = new Reader(path);
        r.Keys(root, "", ["name", "config", "set", "steps", "eval-steps", "seeds", "baseline", "variants", "samplers", "sweeps", "evaluation", "report", "claims", "diagnostics"]);

        string config = r.Str(root, "config", "") is { Length: > 0 } c ? c : throw r.Error("config", "is required: a preset name (demo, toy, …) or a config file, as train --config");
        bool looksLikeFile = config.Contains('/') || config.EndsWith(".toml", StringComparison.Ordinal) || config.EndsWith(".json", StringComparison.Ordinal);
        if (looksLikeFile && !System.IO.Path.IsPathRooted(config))
        {
            string besidePlan = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!, config);
            if (File.Exists(besidePlan) || !File.Exists(config)) config = besidePlan;
        }
        // Paths in [evaluation] are relative to the plan's folder (a plan carries its pinned classifier beside it).
        string BesidePlan(string p) => System.IO.Path.IsPathRooted(p) ? p : System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!, p);
        long steps = r.Long(root, "steps", null, min: 1);
        var evalSteps = r.Longs(root, "eval-steps", required: true, min: 1);
        for (int i = 1; i < evalSteps.Count; i++)
            if (evalSteps[i] <= evalSteps[i - 1]) throw r.Error("eval-steps", "must be increasing");
        if (evalSteps[^1] > steps) throw r.Error("eval-steps", $"step {evalSteps[^1]} exceeds the training budget steps = {steps}");
        if (evalSteps[^1] != steps) throw r.Error("eval-steps", $"the last must be the final checkpoint, steps = {steps}");
        var seeds = r.Longs(root, "seeds", required: true, min: 0);

        var variants = new List<StudyVariant>();
        foreach (var (v, at) in r.Tables(root, "variants", required: true))
        {
            r.Keys(v, at, ["name", "remedy", "set", "seeds"]);
            string name = r.Name(v, at);
            if (variants.Any(x => x.Name == name)) throw r.Error(at + ".name", $"'{name}' is given twice");
            var remedies = r.Strs(v, at + ".remedy", "remedy");
            foreach (var list in remedies)
            {
                try { _ = Training.Remedies.Presets(list).ToList(); }
                catch (UserError err) { throw r.Error(at + ".remedy", err.Message); }
            }
            var own = v.ContainsKey("seeds") ? r.Longs(v, "seeds", required: true, min: 0, at: at + ".seeds") : seeds;
            variants.Add(new StudyVariant(name, remedies, r.Strs(v, at + ".set", "set"), own));
        }
        string baseline = r.Str(root, "baseline", variants[0].Name);
        if (!variants.Any(v => v.Name == baseline)) throw r.Error("baseline", $"no variant named '{baseline}'");

        var samplers = new List<StudySampler>();
        foreach (var (s, at) in r.Tables(root, "samplers", required: true))
        {
            r.Keys(s, at, ["label", "sampler", "steps", "final-only", "options"]);
            string label = r.Label(s, at);
            if (samplers.Any(x => x.Label == label)) throw r.Error(at + ".label", $"'{label}' is given twice");
            string name = r.Str(s, "sampler", "", at + ".sampler");
            if (!Sampling.Samplers.Names.Contains(name)) throw r.Error(at + ".sampler", $"unknown sampler '{name}'; expected one of {string.Join(", ", Sampling.Samplers.Names)}");
            var set = new List<KeyValuePair<string, string>> { new("sampler", JsonSerializer.Serialize(name)) };
            if (s.ContainsKey("steps")) set.Add(new("steps", r.Long(s, "steps", null, 1, at + ".steps").ToString(CultureInfo.InvariantCulture)));
            set.AddRange(r.Options(s, at));
            samplers.Add(new StudySampler(label, set, r.Bool(s, "final-only", false, at + ".final-only")));
        }

        var sweeps = new List<StudySweep>();
        foreach (var (w, at) in r.Tables(root, "sweeps", required: false))
        {
            r.Keys(w, at, ["name", "variant", "samplers", "points", "final-only", "seeds", "n"]);
            string name = r.Name(w, at);
            var sweepVariants = r.Strs(w, at + ".variant", "variant");
            if (sweepVariants.Count == 0) throw r.Error(at + ".variant", "is required: a variant name or a list of them");
            foreach (var variant in sweepVariants)
                if (!variants.Any(v => v.Name == variant)) throw r.Error(at + ".variant", $"no variant named '{variant}'");
            List<long>? sweepSeeds = null;
            if (w.ContainsKey("seeds"))
            {
                sweepSeeds = r.Longs(w, "seeds", required: true, min: 0, at: at + ".seeds");
                foreach (var seed in sweepSeeds)
                    if (!sweepVariants.Any(v => variants.First(x => x.Name == v).Seeds.Contains(seed)))
                        throw r.Error(at + ".seeds", $"seed {seed} is not a seed of {string.Join(" or ", sweepVariants)}");
            }
            int? sweepN = w.ContainsKey("n") ? (int)r.Long(w, "n", null, 2, at + ".n") : null;
            var labels = w.ContainsKey("samplers") ? r.Strs(w, at + ".samplers", "samplers") : samplers.Select(s => s.Label).ToList();
            foreach (var l in labels)
                if (!samplers.Any(s => s.Label == l)) throw r.Error(at + ".samplers", $"no sampler labelled '{l}'");
            var points = new List<SweepPoint>();
            foreach (var (p, pat) in r.Tables(w, "points", required: true, at: at + ".points"))
            {
                r.Keys(p, pat, ["label", "options"]);
                string label = r.Label(p, pat);
                if (points.Any(x => x.Label == label)) throw r.Error(pat + ".label", $"'{label}' is given twice");
                points.Add(new SweepPoint(label, r.Options(p, pat, stepsAllowed: true)));
            }
            if (sweeps.Any(x => x.Name == name)) throw r.Error(at + ".name", $"'{name}' is given twice");
            sweeps.Add(new StudySweep(name, sweepVariants, labels, points, r.Bool(w, "final-only", false, at + ".final-only"), sweepSeeds, sweepN));
        }

        var e = root["evaluation"] as JsonObject ?? throw r.Error("evaluation", "is required: a table with n, seed, reference, features, metrics");
        r.Keys(e, "evaluation", ["n", "seed", "reference", "reference-n", "features", "metrics", "batch-size", "kid-subsets", "kid-subset-size", "k", "mmd-n",
                                 "mixture-min-per-mode", "data-dir", "classifier-cache", "inception-weights", "floor"]);
        var d = new StudyEvaluation();
        var evaluation = new StudyEvaluation
        {
            N = (int)r.Long(e, "n", null, 2, "evaluation.n"),
            Seed = r.Long(e, "seed", d.Seed, 0, "evaluation.seed"),
            Reference = r.Str(e, "reference", "", "evaluation.reference") is { Length: > 0 } rf ? rf : throw r.Error("evaluation.reference", "is required: a data spec or saved reference statistics (.npz)"),
            ReferenceN = (int)r.Long(e, "reference-n", d.ReferenceN, 2, "evaluation.reference-n"),
            Features = r.Str(e, "features", "", "evaluation.features") is { Length: > 0 } ft ? ft : throw r.Error("evaluation.features", "is required: raw, inception-fid or classifier:DATASET"),
            Metrics = r.Strs(e, "evaluation.metrics", "metrics") is { Count: > 0 } ms ? ms : throw r.Error("evaluation.metrics", "is required, e.g. [\"fid\", \"kid\", \"pr\"]"),
            BatchSize = (int)r.Long(e, "batch-size", d.BatchSize, 1, "evaluation.batch-size"),
            KidSubsets = (int)r.Long(e, "kid-subsets", d.KidSubsets, 1, "evaluation.kid-subsets"),
            KidSubsetSize = (int)r.Long(e, "kid-subset-size", d.KidSubsetSize, 2, "evaluation.kid-subset-size"),
            K = (int)r.Long(e, "k", d.K, 1, "evaluation.k"),
            MmdN = (int)r.Long(e, "mmd-n", d.MmdN, 2, "evaluation.mmd-n"),
            MixtureMinPerMode = (int)r.Long(e, "mixture-min-per-mode", d.MixtureMinPerMode, 1, "evaluation.mixture-min-per-mode"),
            DataDir = e.ContainsKey("data-dir") ? BesidePlan(r.Str(e, "data-dir", "", "evaluation.data-dir")) : null,
            ClassifierCache = e.ContainsKey("classifier-cache") ? BesidePlan(r.Str(e, "classifier-cache", "", "evaluation.classifier-cache")) : null,
            InceptionWeights = e.ContainsKey("inception-weights") ? BesidePlan(r.Str(e, "inception-weights", "", "evaluation.inception-weights")) : null,
            Floor = e.ContainsKey("floor") ? (r.Str(e, "floor", "", "evaluation.floor") is { Length: > 0 } fl ? fl : throw r.Error("evaluation.floor", "expected a data spec of real examples, e.g. fashion-mnist")) : null,
        };
        string metric = "fid";
        string? keepSampler = null;
        int keepN = 64;
        if (root["report"] is JsonObject rep)
        {
            r.Keys(rep, "report", ["metric", "samples", "samples-n"]);
            metric = r.Str(rep, "metric", metric, "report.metric");
            if (rep.ContainsKey("samples"))
            {
                keepSampler = r.Str(rep, "samples", "", "report.samples");
                if (!samplers.Any(x => x.Label == keepSampler))
                    throw r.Error("report.samples", $"no sampler labelled '{keepSampler}'; expected one of {string.Join(", ", samplers.Select(x => x.Label))}");
            }
            keepN = (int)r.Long(rep, "samples-n", keepN, 1, "report.samples-n");
            if (keepN > evaluation.N) throw r.Error("report.samples-n", $"{keepN} is more than the evaluation's n = {evaluation.N}");
        }
        else if (root.ContainsKey("report")) throw r.Error("report", "expected a table");

        var claims = new List<StudyClaim>();
        foreach (var (cl, at) in r.Tables(root, "claims", required: false))
        {
            r.Keys(cl, at, ["claim", "variant", "row", "step", "against", "against-row", "against-step", "metric", "effect"]);
            string text = r.Str(cl, "claim", "", at + ".claim") is { Length: > 0 } t ? t : throw r.Error(at + ".claim", "is required: the claim in words, with the paper's numbers");
            string variant = r.Str(cl, "variant", "", at + ".variant");
            if (!variants.Any(v => v.Name == variant)) throw r.Error(at + ".variant", $"no variant named '{variant}'");
            string against = r.Str(cl, "against", baseline, at + ".against");
            if (!variants.Any(v => v.Name == against)) throw r.Error(at + ".against", $"no variant named '{against}'");
            string row = r.Str(cl, "row", "", at + ".row") is { Length: > 0 } rw ? rw : throw r.Error(at + ".row", "is required: a sampler label, or 'LABEL SWEEP=POINT' of a sweep");
            long step = r.Long(cl, "step", steps, 1, at + ".step");
            double? effect = null;
            if (cl["effect"] is JsonNode en)
                effect = en is JsonValue ev && (ev.TryGetValue<double>(out var x) || (ev.TryGetValue<long>(out var whole) && (x = whole) == whole)) && x > -1 && double.IsFinite(x) ? x : throw r.Error(at + ".effect", $"expected a relative change above −1 (e.g. -0.26 for 26 % lower), got {en.ToJsonString()}");
            string claimMetric = r.Str(cl, "metric", metric, at + ".metric");
            if (!LowerIsBetter.TryGetValue(claimMetric, out bool lower))
                throw r.Error(at + ".metric", $"expected one of {string.Join(", ", LowerIsBetter.Keys)}, got '{claimMetric}'");
            int better = lower ? -1 : 1;
            if (effect is double ef && ef != 0 && Math.Sign(ef) != better)
                throw r.Error(at + ".effect", $"{ef.ToString(CultureInfo.InvariantCulture)} would make {claimMetric} worse ({(lower ? "lower" : "higher")} is better); a claim states an improvement (or 0: no worse)");
            claims.Add(new StudyClaim(text, variant, row, step, against, r.Str(cl, "against-row", row, at + ".against-row"), r.Long(cl, "against-step", step, 1, at + ".against-step"),
                                      claimMetric, effect));
        }

        var diagnostics = new List<StudyDiagnostic>();
        foreach (var (g, at) in r.Tables(root, "diagnostics", required: false))
        {
            r.Keys(g, at, ["name", "variants", "seed", "n", "steps", "grid-points", "delta", "permutations", "bandwidth"]);
            string name = r.Str(g, "name", "", at + ".name");
            if (!StudyDiagnostic.Names.Contains(name))
                throw r.Error(at + ".name", $"expected one of {string.Join(", ", StudyDiagnostic.Names)}, got '{name}' (mixture-steps: a [[sweeps]] over steps)");
            if (diagnostics.Any(x => x.Name == name)) throw r.Error(at + ".name", $"'{name}' is given twice");
            var dv = r.Strs(g, at + ".variants", "variants");
            if (dv.Count == 0) throw r.Error(at + ".variants", "is required: the variants whose curve is drawn over the baseline's");
            long seed = r.Long(g, "seed", seeds[0], 0, at + ".seed");
            foreach (var v in dv.Append(baseline))
            {
                var variant = variants.FirstOrDefault(x => x.Name == v) ?? throw r.Error(at + ".variants", $"no variant named '{v}'");
                if (!variant.Seeds.Contains(seed)) throw r.Error(at + ".seed", $"{seed} is not a seed of variant '{v}'");
            }
            foreach (var (key, owner) in new[] { ("delta", "lipschitz"), ("permutations", "error-propagation"), ("bandwidth", "error-propagation") })
                if (g.ContainsKey(key) && name != owner) throw r.Error($"{at}.{key}", $"applies to {owner} only");
            string bandwidth = r.Str(g, "bandwidth", "nearest", at + ".bandwidth");
            try { MmdBandwidth.Parse(bandwidth); }
            catch (UserError err) { throw r.Error(at + ".bandwidth", err.Message); }
            double delta = 1.0;
            if (g["delta"] is JsonNode dn)
                delta = dn is JsonValue dvv && (dvv.TryGetValue<double>(out var dx) || (dvv.TryGetValue<long>(out var dl) && (dx = dl) == dl)) && dx > 0 ? dx : throw r.Error(at + ".delta", $"expected a positive number of steps, got {dn.ToJsonString()}");
            diagnostics.Add(new StudyDiagnostic(name, dv, seed, (int)r.Long(g, "n", 128, 2, at + ".n"), (int)r.Long(g, "steps", 100, 1, at + ".steps"),
                (int)r.Long(g, "grid-points", 25, 2, at + ".grid-points"), delta, (int)r.Long(g, "permutations", 100, 0, at + ".permutations"), bandwidth));
        }

        return new StudyPlan
        {
            Path = path, Name = r.Str(root, "name", System.IO.Path.GetFileNameWithoutExtension(path)), Config = config,
            Sets = r.Strs(root, "set", "set"), Steps = steps, EvalSteps = evalSteps, Seeds = seeds, Baseline = baseline,
            Variants = variants, Samplers = samplers, Sweeps = sweeps, Evaluation = evaluation, PrimaryMetric = metric,
            Claims = claims, Diagnostics = diagnostics, SamplesSampler = keepSampler, SamplesN = keepN,
        };
    }

    // Strict reads of the plan's JSON tree: every problem names the plan file and the key.
    private sealed class Reader(string path)
    {
        public UserError Error(string key, string what) => new($"{path}: {key}: {what}");

        public void Keys(JsonObject o, string at, string[] allowed)
        {
            foreach (var k in o.Select(p => p.Key))
                if (!allowed.Contains(k))
                    throw new UserError($"{path}: unknown plan key '{(at.Length == 0 ? k : at + "." + k)}'; expected one of {string.Join(", ", allowed)}");
        }

        public string Str(JsonObject o, string key, string fallback, string? at = null)
        {
            if (o[key] is not JsonNode n) return fallback;
            return n is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw Error(at ?? key, $"expected a string, got {n.ToJsonString()}");
        }

        public bool Bool(JsonObject o, string key, bool fallback, string at)
        {
            if (o[key] is not JsonNode n) return fallback;
            return n is JsonValue v && v.TryGetValue<bool>(out var b) ? b : throw Error(at, $"expected true or false, got {n.ToJsonString()}");
        }

        public long Long(JsonObject o, string key, long? fallback, long min, string? at = null)
        {
            if (o[key] is not JsonNode n) return fallback ?? throw Error(at ?? key, "is required");
            if (n is not JsonValue v || !v.TryGetValue<long>(out var x)) throw Error(at ?? key, $"expected an integer, got {n.ToJsonString()}");
            return x >= min ? x : throw Error(at ?? key, $"must be at least {min}, got {x}");
        }

        public List<long> Longs(JsonObject o, string key, bool required, long min, string? at = null)
        {
            if (o[key] is not JsonArray a || a.Count == 0)
                return required ? throw Error(at ?? key, "is required: a non-empty list of integers") : [];
            var list = new List<long>();
            foreach (var n in a)
            {
                if (n is not JsonValue v || !v.TryGetValue<long>(out var x)) throw Error(at ?? key, $"expected integers, got {n?.ToJsonString()}");
                if (x < min) throw Error(at ?? key, $"must be at least {min}, got {x}");
                list.Add(x);
            }
            if (list.Distinct().Count() != list.Count) throw Error(at ?? key, "holds a value twice");
            return list;
        }

        public List<string> Strs(JsonObject o, string at, string key)
        {
            if (o[key] is not JsonNode n) return [];
            if (n is JsonValue single && single.TryGetValue<string>(out var one)) return [one];
            if (n is not JsonArray a) throw Error(at, $"expected a list of strings, got {n.ToJsonString()}");
            return a.Select(x => x is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw Error(at, $"expected strings, got {x?.ToJsonString()}")).ToList();
        }

        public IEnumerable<(JsonObject, string)> Tables(JsonObject o, string key, bool required, string? at = null)
        {
            if (o[key] is not JsonArray a || a.Count == 0)
            {
                if (required) throw Error(at ?? key, $"is required: one or more [[{key}]] tables");
                yield break;
            }
            for (int i = 0; i < a.Count; i++)
                yield return (a[i] as JsonObject ?? throw Error($"{at ?? key}[{i}]", "expected a table"), $"{at ?? key}[{i}]");
        }

        public string Name(JsonObject o, string at)
        {
            string name = Str(o, "name", "", at + ".name");
            if (name.Length == 0) throw Error(at + ".name", "is required");
            if (Safe(name) != name) throw Error(at + ".name", $"'{name}': use letters, digits and . _ - = + only (it names files)");
            return name;
        }

        public string Label(JsonObject o, string at)
        {
            string label = Str(o, "label", "", at + ".label");
            return label.Length > 0 ? label : throw Error(at + ".label", "is required");
        }

        // options = { eps-scale-b = 1.004, sigmas = "karras" }: sample.KEY=value assignments as diffusion sample makes them. A
        // sweep point may set steps (a sweep over the number of steps); a sampler gives its sampler and steps as keys of its own.
        public List<KeyValuePair<string, string>> Options(JsonObject o, string at, bool stepsAllowed = false)
        {
            if (o["options"] is not JsonNode n) return [];
            if (n is not JsonObject t) throw Error(at + ".options", "expected a table, e.g. { eps-scale-b = 1.004 }");
            var list = new List<KeyValuePair<string, string>>();
            foreach (var (k, v) in t)
            {
                if (k == "sampler" || (k == "steps" && !stepsAllowed)) throw Error($"{at}.options.{k}", $"give {k} in the sampler itself");
                if (v is null || v is JsonObject) throw Error($"{at}.options.{k}", "expected a value");
                list.Add(new(k, v.ToJsonString()));
            }
            return list;
        }
    }
}
