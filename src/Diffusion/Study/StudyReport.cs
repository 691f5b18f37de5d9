using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Diffusion.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Study;

/// <summary>
/// <c>diffusion study --report</c>: a Markdown report made from the result files alone (no model is loaded). Per metric,
/// a table variant × sampler at the final checkpoint with the mean ± sample standard deviation over seeds (the value
/// alone for one seed); the primary metric at every checkpoint, as a table and a PNG plot per sampler (seeds averaged);
/// each variant against the baseline with a verdict only when the difference of means exceeds twice the seed spread
/// (the larger of the two variants' standard deviations); the sweeps; the budget and the CPU time measured.
/// </summary>
public static class StudyReport
{
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>The metric keys the report tabulates, in order, with their headings.</summary>
    public static readonly IReadOnlyList<(string Key, string Title)> Metrics =
    [
        ("fid", "FID"), ("kid", "KID"), ("precision", "precision"), ("recall", "recall"), ("mmd2", "MMD²"),
        ("mixture_within_3sigma", "fraction within 3σ of a mode"), ("mixture_modes_covered", "modes covered"), ("mixture_log_likelihood", "mean log-likelihood under the true mixture"),
    ];

    /// <summary>A number as the report prints it: four significant digits in fixed point (at least the units), G3 below 10⁻⁴, whole numbers as they are.</summary>
    public static string Number(double v)
    {
        if (v == 0 || !double.IsFinite(v)) return v.ToString(C);
        double a = Math.Abs(v);
        if (a < 1e-4) return v.ToString("G3", C);
        if (v == Math.Round(v) && a < 1e7) return v.ToString("F0", C);   // counts (modes covered) as they are
        int decimals = Math.Clamp(3 - (int)Math.Floor(Math.Log10(a)), 0, 7);
        return Math.Round(v, decimals).ToString("F" + decimals, C);
    }

    /// <summary>The mean of the values and their sample standard deviation (n − 1; 0 for one value).</summary>
    public static (double Mean, double Sd) MeanSd(IReadOnlyList<double> v)
    {
        double mean = v.Average();
        double sd = v.Count < 2 ? 0 : Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Count - 1));
        return (mean, sd);
    }

    /// <summary>A table cell: "mean ± sd" over seeds, or the value alone for one seed.</summary>
    public static string Cell(IReadOnlyList<double> v)
    {
        if (v.Count == 0) return "—";
        var (m, s) = MeanSd(v);
        return v.Count == 1 ? Number(m) : $"{Number(m)} ± {Number(s)}";
    }

    // The per-seed values of one metric for (variant, step, row label).
    private sealed record Row(string Variant, long Step, string Label, string SamplerLabel, string? Sweep, string? Point, long Seed, JsonObject Metrics);

    /// <summary>Writes the report to <paramref name="reportPath"/> (plots beside it) and returns its text.</summary>
    public static string Write(StudyPlan plan, string outDir, string reportPath, string command)
    {
        var results = new StudyFolder(outDir).Results().Where(r => r["plan"]?.GetValue<string>() == plan.Name).ToList();
        var rows = results.SelectMany(r => r["evaluations"]!.AsArray().OfType<JsonObject>().Select(e => new Row(
            r["variant"]!.GetValue<string>(), e["step"]!.GetValue<long>(), e["label"]!.GetValue<string>(), e["sampler_label"]!.GetValue<string>(),
            e["sweep"]?.GetValue<string>(), e["point"]?.GetValue<string>(), r["seed"]!.GetValue<long>(), e["metrics"]!.AsObject()))).ToList();
        string dir = Path.GetDirectoryName(Path.GetFullPath(reportPath))!;
        Directory.CreateDirectory(dir);
        string stem = Path.GetFileNameWithoutExtension(reportPath);
        long final = plan.EvalSteps[^1];
        var variants = plan.Variants.Where(v => results.Any(r => r["variant"]!.GetValue<string>() == v.Name)).Select(v => v.Name).ToList();
        var samplerLabels = plan.Samplers.Select(s => s.Label).ToList();
        // The per-seed rows that measured one metric for (variant, step, row label); their values, or their seeds.
        IEnumerable<Row> Measured(string variant, long step, string label, string key) =>
            rows.Where(r => r.Variant == variant && r.Step == step && r.Label == label && r.Metrics[key] is not null);
        List<double> Values(string variant, long step, string label, string key, IReadOnlySet<long>? seeds = null) =>
            Measured(variant, step, label, key).Where(r => seeds is null || seeds.Contains(r.Seed)).Select(r => r.Metrics[key]!.GetValue<double>()).ToList();
        HashSet<long> SeedsOf(string variant, long step, string label, string key) => Measured(variant, step, label, key).Select(r => r.Seed).ToHashSet();
        int Seeds(string variant) => results.Count(r => r["variant"]!.GetValue<string>() == variant);

        var md = new StringBuilder();
        md.AppendLine($"# Study `{plan.Name}`");
        md.AppendLine();
        md.AppendLine($"Generated from the result files in `{outDir}/results/` by `{command}` (no model is loaded: rerun it to regenerate this report).");
        md.AppendLine();
        var jobs = plan.Jobs();
        var missing = jobs.Where(j => !results.Any(r => r["job"]!.GetValue<string>() == j.Id)).Select(j => j.Id).ToList();
        var failed = jobs.Where(j => File.Exists(new StudyFolder(outDir).Failed(j))).Select(j => j.Id).ToList();
        md.AppendLine($"* **Jobs:** {jobs.Count - missing.Count} of {jobs.Count} finished" + (missing.Count == 0 ? "." : $"; not yet: {string.Join(", ", missing)}.") +
                      (failed.Count == 0 ? "" : $" Failed (see `diffusion study --status`): {string.Join(", ", failed)}."));
        var batch = results.Select(r => r["train"]!["batch_size"]!.GetValue<int>()).Distinct().ToList();
        md.AppendLine($"* **Budget:** {plan.Steps} training steps of batch {string.Join("/", batch)} per job (base config `{plan.Config}`" +
                      (plan.Sets.Count == 0 ? "" : $", `--set {string.Join(" --set ", plan.Sets)}`") + $"); checkpoints evaluated at steps {string.Join(", ", plan.EvalSteps)}.");
        var parameters = variants.Select(v => (v, results.Where(r => r["variant"]!.GetValue<string>() == v).Select(r => r["parameters"]!.GetValue<long>()).First())).ToList();
        md.AppendLine(parameters.Select(p => p.Item2).Distinct().Count() <= 1
            ? $"* **Model parameters:** {parameters.Select(p => p.Item2).FirstOrDefault():N0}."
            : $"* **Model parameters:** {string.Join(", ", parameters.Select(p => $"{p.v} {p.Item2:N0}"))}.");
        double trainCpu = results.Sum(r => r["train"]!["cpu_seconds"]?.GetValue<double>() ?? 0);
        double evalCpu = results.SelectMany(r => r["evaluations"]!.AsArray()).Sum(e => e!["cpu_seconds"]?.GetValue<double>() ?? 0);
        double trainWall = results.Sum(r => r["train"]!["seconds"]?.GetValue<double>() ?? 0);
        double evalWall = results.SelectMany(r => r["evaluations"]!.AsArray()).Sum(e => e!["sample_seconds"]!.GetValue<double>() + e["score_seconds"]!.GetValue<double>());
        md.AppendLine(string.Create(C, $"* **CPU time measured:** {(trainCpu + evalCpu) / 3600:F2} CPU hours ({trainCpu / 3600:F2} training, {evalCpu / 3600:F2} evaluation; the workers' process CPU time, sessions cut short by a kill not counted); wall time {(trainWall + evalWall) / 3600:F2} h summed over jobs."));
        var machines = results.GroupBy(r => Util.MachineInfo.Short(r["machine"] as JsonObject)).Select(g => $"{g.Key}: {g.Count()}");
        md.AppendLine($"* **Machines** that finished the jobs (results per CPU; bfloat16 training differs between CPU kinds): {string.Join("; ", machines)}.");
        var e = plan.Evaluation;
        md.AppendLine($"* **Evaluation:** {e.N} samples per checkpoint and sampler, sample seed {e.Seed} for every variant (the same x_T), EMA weights; {e.Features} features against `{e.Reference}` (at most {e.ReferenceN} examples); metrics {string.Join(", ", e.Metrics)}. " +
                      (plan.SamplesSampler is { } ks ? $"The first {plan.SamplesN} samples of {ks} at the final checkpoint are kept (drawn below); no others." : "Samples are not kept."));
        if (StudyFolder.Read(StudyEvaluator.FeaturesFile(outDir)) is { } feat)
        {
            string who = feat["classifier"] is JsonObject cls
                ? string.Create(C, $" (the classifier's test accuracy {cls["test_accuracy"]!.GetValue<double>():P2}; weights `{feat["identity"]!.GetValue<string>()}`)")
                : "";
            md.AppendLine($"* **Features:** {feat["features"]!.GetValue<string>()}{who}; every result was scored in these (`features.json`; a worker with other features refuses to go on).");
            if (feat["floor"] is JsonObject floor)
            {
                var fm = floor["metrics"]!.AsObject();
                var parts = StudyPlan.LowerIsBetter.Keys.Where(k => fm[k] is JsonValue).Select(k => $"{k} {Number(fm[k]!.GetValue<double>())}");
                md.AppendLine($"* **Real-versus-real floor** (what a perfect model would score at this n): {floor["n"]} real examples of `{floor["source"]!.GetValue<string>()}` scored as samples against the same reference: {string.Join(", ", parts)}.");
            }
        }
        md.AppendLine("* **Spread:** ± is the sample standard deviation over seeds (n − 1 in the denominator); with a single seed the value is shown alone.");
        md.AppendLine();

        // Training: final loss (not comparable across objectives) and time.
        md.AppendLine("## Training");
        md.AppendLine();
        md.AppendLine("| variant | seeds | final loss | training seconds | steps/s |");
        md.AppendLine("|---|---|---|---|---|");
        foreach (var v in variants)
        {
            var mine = results.Where(r => r["variant"]!.GetValue<string>() == v).Select(r => r["train"]!).ToList();
            List<double> Of(string key) => mine.Where(t => t[key] is not null).Select(t => t[key]!.GetValue<double>()).ToList();
            md.AppendLine($"| {v} | {mine.Count} | {Cell(Of("final_loss"))} | {Cell(Of("seconds"))} | {Cell(Of("steps_per_second"))} |");
        }
        md.AppendLine();
        md.AppendLine("The final loss is the mean logged training objective over the last 100 steps; it is not comparable between variants whose objective differs (another weighting, an added term). Seconds move with the machine's load.");
        md.AppendLine();

        // Tables at the final checkpoint, one per metric present.
        var mainRows = rows.Where(r => r.Sweep is null).ToList();
        foreach (var (key, title) in Metrics.Where(m => mainRows.Any(r => r.Metrics[m.Key] is not null)))
        {
            md.AppendLine($"## {title} at the final checkpoint (step {final}){(PlanLowerIsBetter(key) is bool lower ? lower ? " — lower is better" : " — higher is better" : "")}");
            md.AppendLine();
            md.AppendLine($"| variant | seeds | {string.Join(" | ", samplerLabels)} |");
            md.AppendLine($"|---|---|{string.Concat(samplerLabels.Select(_ => "---|"))}");
            foreach (var v in variants)
                md.AppendLine($"| {v} | {Seeds(v)} | {string.Join(" | ", samplerLabels.Select(l => Cell(Values(v, final, l, key))))} |");
            md.AppendLine();
        }

        // The primary metric against training steps: a table and a plot per sampler that runs at every checkpoint.
        string pm = plan.PrimaryMetric;
        var everyStep = plan.Samplers.Where(s => !s.FinalOnly).ToList();
        if (plan.EvalSteps.Count > 1 && everyStep.Count > 0)
        {
            md.AppendLine($"## {pm} against training steps");
            md.AppendLine();
            md.AppendLine($"| variant | sampler | {string.Join(" | ", plan.EvalSteps.Select(s => $"step {s}"))} |");
            md.AppendLine($"|---|---|{string.Concat(plan.EvalSteps.Select(_ => "---|"))}");
            foreach (var s in everyStep)
                foreach (var v in variants)
                    md.AppendLine($"| {v} | {s.Label} | {string.Join(" | ", plan.EvalSteps.Select(st => Cell(Values(v, st, s.Label, pm))))} |");
            md.AppendLine();
            foreach (var s in everyStep)
            {
                string png = $"{stem}-{StudyPlan.Safe(pm)}-{StudyPlan.Safe(s.Label)}.png";
                var series = variants.Select(v =>
                {
                    var pts = plan.EvalSteps.Select(st => (st, Values(v, st, s.Label, pm))).Where(p => p.Item2.Count > 0).ToList();
                    return (v, pts.Select(p => (double)p.st).ToArray(), pts.Select(p => p.Item2.Average()).ToArray());
                }).ToList();
                Plots.Lines(Path.Combine(dir, png), $"{plan.Name}: {pm} with {s.Label} against training steps (mean over seeds)", "training step", pm, series, markers: true);
                md.AppendLine($"![{pm} with {s.Label} against training steps, one line per variant, seeds averaged]({png})");
                md.AppendLine();
            }
        }

        // The kept samples, side by side: for each variant, its lowest seed that kept some.
        if (plan.SamplesSampler is { } keptLabel)
            KeptSection(md, plan, results, variants, keptLabel, final, dir, stem);

        // Each variant against the baseline.
        bool lowerBetter = StudyPlan.LowerIsBetter[pm];
        md.AppendLine($"## Against the baseline `{plan.Baseline}` ({pm} at step {final})");
        md.AppendLine();
        md.AppendLine($"Rule: the difference of means counts only when it exceeds twice the seed spread, the spread being the larger of the two variants' sample standard deviations; then \"better\" or \"worse\" ({(lowerBetter ? "lower" : "higher")} {pm} is better), else \"no difference\". With one seed on either side there is no spread and no verdict.");
        md.AppendLine();
        md.AppendLine("| variant | sampler | variant mean | baseline mean | difference | spread | verdict |");
        md.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var v in variants.Where(v => v != plan.Baseline))
            foreach (var l in samplerLabels)
            {
                var a = Values(v, final, l, pm);
                var b = Values(plan.Baseline, final, l, pm);
                if (a.Count == 0 || b.Count == 0) continue;
                var (ma, sa) = MeanSd(a);
                var (mb, sb) = MeanSd(b);
                md.AppendLine($"| {v} | {l} | {Number(ma)} | {Number(mb)} | {Number(ma - mb)} | {(a.Count < 2 || b.Count < 2 ? "—" : Number(Math.Max(sa, sb)))} | {Verdict(a, b, lowerBetter)} |");
            }
        md.AppendLine();

        // Sampling-only sweeps: a table per variant, and a plot against the point when every point's label is a number.
        foreach (var sweep in plan.Sweeps.Where(w => w.Variants.Any(variants.Contains)))
        {
            var on = sweep.Variants.Where(variants.Contains).ToList();
            string where = (sweep.N is int sn ? $", n = {sn}" : "") + (sweep.Seeds is { } ss ? $", seeds {string.Join(", ", ss)}" : "");
            md.AppendLine($"## Sweep `{sweep.Name}` on {string.Join(", ", on.Select(v => $"`{v}`"))} ({pm} at step {final}{where})");
            md.AppendLine();
            md.AppendLine($"| variant | {sweep.Name} | {string.Join(" | ", sweep.Samplers)} |");
            md.AppendLine($"|---|---|{string.Concat(sweep.Samplers.Select(_ => "---|"))}");
            foreach (var v in on)
            {
                // The plan's own rows are on another n when the sweep has its own: not the sweep's b = 1 row then.
                // On the sweep's seeds only, like its other rows.
                if (sweep.N is null) md.AppendLine($"| {v} | (plan's sampler) | {string.Join(" | ", sweep.Samplers.Select(l => Cell(Values(v, final, l, pm, sweep.Seeds?.ToHashSet()))))} |");
                foreach (var p in sweep.Points)
                    md.AppendLine($"| {v} | {p.Label} | {string.Join(" | ", sweep.Samplers.Select(l => Cell(Values(v, final, $"{l} {sweep.Name}={p.Label}", pm))))} |");
            }
            md.AppendLine();
            md.AppendLine("Cells are mean ± standard deviation over the seeds the sweep ran on.");
            md.AppendLine();
            var xs = sweep.Points.Select(p => double.TryParse(p.Label, NumberStyles.Float, C, out double x) ? x : double.NaN).ToArray();
            if (xs.All(double.IsFinite) && xs.Length > 1)
            {
                string png = $"{stem}-sweep-{StudyPlan.Safe(sweep.Name)}.png";
                var series = on.SelectMany(v => sweep.Samplers.Select(l =>
                {
                    var pts = sweep.Points.Select((p, i) => (xs[i], Values(v, final, $"{l} {sweep.Name}={p.Label}", pm))).Where(q => q.Item2.Count > 0).OrderBy(q => q.Item1).ToList();
                    return (sweep.Samplers.Count == 1 ? v : $"{v} {l}", pts.Select(q => q.Item1).ToArray(), pts.Select(q => q.Item2.Average()).ToArray());
                })).Where(c => c.Item2.Length > 0).ToList();
                if (series.Count > 0)
                {
                    // Log x when the points span a decade or more (step counts 1000 → 10), linear otherwise (b = 1.004 … 1.017).
                    bool logX = xs.Min() > 0 && xs.Max() / xs.Min() >= 10;
                    Plots.Lines(Path.Combine(dir, png), $"{plan.Name}: {pm} against {sweep.Name} (step {final}{where}; mean over seeds)", sweep.Name, pm, series, markers: true, logX: logX);
                    md.AppendLine($"![{pm} against {sweep.Name}, one line per variant and sampler, seeds averaged]({png})");
                    md.AppendLine();
                }
            }
        }
        // Each remedy's own diagnostic with the baseline's overlaid, drawn from the per-model runs kept in the results.
        foreach (var d in plan.Diagnostics)
        {
            var runs = new List<JsonObject>();
            foreach (var v in d.Variants.Prepend(plan.Baseline).Distinct())
                if (results.FirstOrDefault(r => r["variant"]!.GetValue<string>() == v && r["seed"]!.GetValue<long>() == d.Seed)?["diagnostics"]?[d.Name] is JsonObject run)
                    runs.Add(run);
            md.AppendLine($"## Diagnostic `{d.Name}`: {string.Join(", ", d.Variants.Select(v => $"`{v}`"))} against `{plan.Baseline}` (seed {d.Seed}, final checkpoint)");
            md.AppendLine();
            if (runs.Count == 0)
            {
                md.AppendLine("Not measured yet.");
                md.AppendLine();
                continue;
            }
            string sub = $"{stem}-diagnostics/{d.Name}";
            StudyDiagnostics.Write(d, runs, Path.Combine(dir, sub));
            md.AppendLine(string.Create(C, $"N = {d.N}, {d.Steps} backward steps (DDPM), held-out data `{runs[0]["held_out"]}`; `{sub}/{d.Name}.json` holds every number, as `diffusion diagnose {d.Name}` writes it."));
            md.AppendLine();
            md.AppendLine("| model | summary |");
            md.AppendLine("|---|---|");
            foreach (var run in runs) md.AppendLine($"| {run["label"]} | {StudyDiagnostics.Summary(d, run)} |");
            md.AppendLine();
            md.AppendLine($"![{d.Name}: {string.Join(", ", runs.Select(r => r["label"]))}]({sub}/{d.Name}.png)");
            md.AppendLine();
        }

        // The papers' claims, each with a verdict by the stated rule.
        if (plan.Claims.Count > 0)
        {
            md.AppendLine("## The papers' claims");
            md.AppendLine();
            md.AppendLine("Rule: with d the difference of means (claimed row minus the row it is compared with) and the spread the larger of the two sample standard deviations over seeds, a claim is **confirmed** when d is in the claimed direction by more than twice the spread; **not confirmed** when d goes the other way by more than twice the spread, or when |d| is within twice the spread although the paper's change (its relative effect times the compared mean) would exceed twice the spread — the claimed effect would have shown; **inconclusive at this scale** otherwise (the spread is too large to see the claimed effect, or the paper gives no size). A claim of \"no worse\" (effect 0) is confirmed unless the row is worse by more than twice the spread. With fewer than two seeds on either side there is no spread: inconclusive.");
            md.AppendLine();
            md.AppendLine("| claim | measured | compared with | change | paper's change | 2 × spread | verdict |");
            md.AppendLine("|---|---|---|---|---|---|---|");
            foreach (var c in plan.Claims)
            {
                // Two rows of one variant (a sampling-only change such as ε-scaling, measured on some of its seeds) are
                // compared on the seeds that have both: the same trained models, so the seed-to-seed spread of training
                // does not enter the difference as a bias.
                HashSet<long>? common = null;
                if (c.Variant == c.Against)
                {
                    common = SeedsOf(c.Variant, c.Step, c.Row, c.Metric);
                    common.IntersectWith(SeedsOf(c.Against, c.AgainstStep, c.AgainstRow, c.Metric));
                }
                var a = Values(c.Variant, c.Step, c.Row, c.Metric, common);
                var b = Values(c.Against, c.AgainstStep, c.AgainstRow, c.Metric, common);
                string Where(string v, string row, long step, IReadOnlyList<double> x) => $"{v} {row} @ {step}: {c.Metric} {Cell(x)}" +
                    (common is null ? "" : $" (seed{(common.Count == 1 ? "" : "s")} {string.Join(", ", common.Order())})");
                string change = a.Count == 0 || b.Count == 0 ? "—" : Percent(a.Average() / b.Average() - 1);
                string paper = c.Effect is double ef ? (ef == 0 ? "no worse" : Percent(ef)) : "direction only";
                string twice = a.Count < 2 || b.Count < 2 ? "—" : Number(2 * Math.Max(MeanSd(a).Sd, MeanSd(b).Sd));
                md.AppendLine($"| {c.Text} | {Where(c.Variant, c.Row, c.Step, a)} | {Where(c.Against, c.AgainstRow, c.AgainstStep, b)} | {change} | {paper} | {twice} | {ClaimVerdict(a, b, StudyPlan.LowerIsBetter[c.Metric], c.Effect)} |");
            }
            md.AppendLine();
        }

        string text = md.ToString();
        File.WriteAllText(reportPath, text);
        return text;
    }

    // "## Samples": a picture per variant (an image grid, or a scatter over the reference data for 2-D samples) drawn
    // from the samples kept in the result files, in tables of four.
    private static void KeptSection(StringBuilder md, StudyPlan plan, List<JsonObject> results, List<string> variants, string label, long final, string dir, string stem)
    {
        md.AppendLine($"## Samples: {label} at step {final}");
        md.AppendLine();
        var pictures = new List<(string Variant, long Seed, string Png)>();
        Tensor? reference = null;
        bool referenceTried = false;
        try
        {
            foreach (var v in variants)
            {
                var kept = results.Where(r => r["variant"]!.GetValue<string>() == v).OrderBy(r => r["seed"]!.GetValue<long>())
                    .Select(r => (Seed: r["seed"]!.GetValue<long>(), Samples: r["evaluations"]!.AsArray().OfType<JsonObject>()
                        .FirstOrDefault(e => e["step"]!.GetValue<long>() == final && e["label"]!.GetValue<string>() == label)?["samples"] as JsonObject))
                    .FirstOrDefault(k => k.Samples is not null);
                if (kept.Samples is null) continue;
                using var samples = KeptSamples.Decode(kept.Samples);
                if (samples.dim() == 2 && samples.shape[1] == 2 && !referenceTried)
                {
                    referenceTried = true;
                    reference = ReferencePoints(plan, 2000);
                }
                string png = $"{stem}-samples/{StudyPlan.Safe(v)}.png";
                Directory.CreateDirectory(Path.Combine(dir, $"{stem}-samples"));
                SampleOutput.Save(Path.Combine(dir, png), samples, samples.dim() == 2 ? reference : null,
                                  $"{v} (seed {kept.Seed}): {samples.shape[0]} samples, {label}", columns: samples.dim() == 4 ? 8 : 0);
                pictures.Add((v, kept.Seed, png));
            }
        }
        finally { reference?.Dispose(); }
        if (pictures.Count == 0)
        {
            md.AppendLine("None kept yet (results made before the plan kept samples have none).");
            md.AppendLine();
            return;
        }
        md.AppendLine($"The first {plan.SamplesN} samples of each variant's {label} evaluation at the final checkpoint, kept in its result file " +
                      $"(the lowest seed that kept them; every variant starts from the same x_T).");
        md.AppendLine();
        foreach (var chunk in pictures.Chunk(4))
        {
            md.AppendLine("| " + string.Join(" | ", chunk.Select(p => $"{p.Variant} (seed {p.Seed})")) + " |");
            md.AppendLine("|" + string.Concat(chunk.Select(_ => "---|")));
            md.AppendLine("| " + string.Join(" | ", chunk.Select(p => $"![{p.Variant}]({p.Png})")) + " |");
            md.AppendLine();
        }
    }

    // Up to n points of the plan's reference data, drawn under 2-D samples; null when it is not data that can be read here.
    private static Tensor? ReferencePoints(StudyPlan plan, int n)
    {
        try
        {
            using var all = Data.DataSources.Load(new Config.DataConfig { Spec = plan.Evaluation.Reference, DataDir = plan.Evaluation.DataDir });
            return all.Data.narrow(0, 0, Math.Min(n, all.Count)).to_type(TorchSharp.torch.ScalarType.Float32);
        }
        catch (UserError) { return null; }
    }

    /// <summary>
    /// better / worse / no difference of <paramref name="variant"/> against <paramref name="baseline"/>: a verdict only when
    /// |mean difference| &gt; 2 · max(sd_variant, sd_baseline); "one seed: no spread" when either has fewer than two values.
    /// </summary>
    public static string Verdict(IReadOnlyList<double> variant, IReadOnlyList<double> baseline, bool lowerIsBetter)
    {
        if (variant.Count < 2 || baseline.Count < 2) return "one seed: no spread";
        var (ma, sa) = MeanSd(variant);
        var (mb, sb) = MeanSd(baseline);
        double diff = ma - mb, spread = Math.Max(sa, sb);
        if (Math.Abs(diff) <= 2 * spread) return "no difference";
        return (diff < 0) == lowerIsBetter ? "better" : "worse";
    }

    /// <summary>
    /// The verdict on a claim that <paramref name="claimed"/> is better than <paramref name="against"/> (lower or higher
    /// by <paramref name="lowerIsBetter"/>), by the rule the report states: confirmed / not confirmed / inconclusive at
    /// this scale, from the difference of means d, the spread s (larger sample sd) and the paper's relative
    /// <paramref name="effect"/> (null: no size given; 0: "no worse").
    /// </summary>
    public static string ClaimVerdict(IReadOnlyList<double> claimed, IReadOnlyList<double> against, bool lowerIsBetter, double? effect)
    {
        if (claimed.Count == 0 || against.Count == 0) return "not measured yet";
        if (claimed.Count < 2 || against.Count < 2) return "inconclusive: one seed";
        var (ma, sa) = MeanSd(claimed);
        var (mb, sb) = MeanSd(against);
        double d = ma - mb, noise = 2 * Math.Max(sa, sb);
        bool better = lowerIsBetter ? d < 0 : d > 0;
        if (effect == 0) return !better && Math.Abs(d) > noise ? "not confirmed: worse" : "confirmed: no worse";
        if (Math.Abs(d) > noise) return better ? "confirmed" : "not confirmed: the opposite";
        if (effect is double ef && Math.Abs(ef * mb) > noise) return "not confirmed: no difference where the paper's would show";
        return "inconclusive at this scale";
    }

    private static string Percent(double relative) => (relative >= 0 ? "+" : "−") + Math.Abs(100 * relative).ToString("F1", C) + " %";

    private static bool? PlanLowerIsBetter(string key) => StudyPlan.LowerIsBetter.TryGetValue(key, out var b) ? b : null;
}
