using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Diffusion.Sampling;
using Diffusion.Training;

namespace Diffusion.Study;

/// <summary>Where one job stands: done (a result file), running (a live claim, with the worker's progress), failed (its <c>failed.json</c>) or left.</summary>
public sealed record JobStatus(StudyJob Job, string State, string Detail);

/// <summary>
/// <c>diffusion study --status</c>: every job's state read from the files the workers write, and an estimate of the work
/// left from measured durations — training seconds per step (the variant's own mean over its finished trainings, else the
/// mean over all), sampling seconds per sample·NFE and scoring seconds per sample (over every evaluation made so far);
/// where a finished job's work folder is gone, its result file's durations count instead.
/// </summary>
public sealed class StudyStatus
{
    public required IReadOnlyList<JobStatus> Jobs { get; init; }
    /// <summary>Seconds of work left (serial), or null when nothing is measured yet.</summary>
    public double? SecondsLeft { get; init; }
    public required string Estimate { get; init; }
    /// <summary>Seconds of work left per unfinished job (by id), where the rates are known: what one worker needs to finish it.</summary>
    public IReadOnlyDictionary<string, double> JobSecondsLeft { get; init; } = new Dictionary<string, double>();

    public int Count(string state) => Jobs.Count(j => j.State == state);

    public static StudyStatus Of(StudyPlan plan, string outDir)
    {
        var folder = new StudyFolder(outDir);
        // Training: seconds per step per variant and overall, from every finished training (train.json of finished and partial jobs).
        var trainRates = new List<(string Variant, double Seconds, long Steps)>();
        var evals = new List<(string Variant, JsonObject Eval)>();
        foreach (var job in plan.Jobs())
        {
            // A finished job whose work folder is gone (results copied into a fresh folder on another machine) still
            // gives its rates from its result file.
            var result = File.Exists(folder.Result(job)) ? StudyFolder.Read(folder.Result(job)) : null;
            if (StudyFolder.Read(folder.TrainInfo(job)) is { } t && t["seconds"] is not null)
                trainRates.Add((job.Variant.Name, t["seconds"]!.GetValue<double>(), t["steps"]!.GetValue<long>()));
            else if (result?["train"] is JsonObject rt && rt["seconds"] is not null && rt["steps"] is not null)
                trainRates.Add((job.Variant.Name, rt["seconds"]!.GetValue<double>(), rt["steps"]!.GetValue<long>()));
            var evalDir = Path.GetDirectoryName(folder.Eval(job, plan.Tasks(job)[0]))!;
            var cached = Directory.Exists(evalDir) ? Directory.GetFiles(evalDir, "*.json").Select(StudyFolder.Read).OfType<JsonObject>().ToList() : [];
            if (cached.Count == 0 && result?["evaluations"] is JsonArray re) cached = re.OfType<JsonObject>().ToList();
            evals.AddRange(cached.Where(e => e["n"] is not null && e["nfe"] is not null && e["sample_seconds"] is not null && e["score_seconds"] is not null)
                                 .Select(e => (job.Variant.Name, e)));
        }
        double? globalTrain = trainRates.Count == 0 ? null : trainRates.Sum(t => t.Seconds) / trainRates.Sum(t => t.Steps);
        // Evaluation: sampling seconds per sample·NFE and scoring seconds per sample, from every evaluation made so far.
        static double? SampleRate(IEnumerable<JsonObject> es)
        {
            var list = es.ToList();
            double work = list.Sum(e => e["n"]!.GetValue<double>() * e["nfe"]!.GetValue<double>());
            return work == 0 ? null : list.Sum(e => e["sample_seconds"]!.GetValue<double>()) / work;
        }
        double? sampleRate = SampleRate(evals.Select(x => x.Eval));
        // Each variant's own rates where it has them. A variant with none yet that combines others (its remedies and
        // assignments include theirs: "all five") costs about the baseline plus each part's extra cost per training step,
        // and samples at its slowest part's rate (or the plan's average, if slower); the plan-wide averages would take it for an average variant (all five
        // of the Fashion-MNIST plan took ≈ 3× the average training time and overran a session).
        var ownTrain = trainRates.GroupBy(t => t.Variant).ToDictionary(g => g.Key, g => g.Sum(t => t.Seconds) / g.Sum(t => t.Steps));
        var ownSample = evals.GroupBy(x => x.Variant).ToDictionary(g => g.Key, g => SampleRate(g.Select(x => x.Eval)));
        double? VariantTrainRate(StudyVariant v)
        {
            if (ownTrain.TryGetValue(v.Name, out double r)) return r;
            var parts = Parts(plan, v).Where(p => ownTrain.ContainsKey(p.Name)).ToList();
            if (parts.Count > 0 && ownTrain.TryGetValue(plan.Baseline, out double b))
                return b + parts.Sum(p => Math.Max(0, ownTrain[p.Name] - b));
            return globalTrain;
        }
        double? VariantSampleRate(StudyVariant v)
        {
            if (ownSample.TryGetValue(v.Name, out var r) && r is not null) return r;
            var parts = Parts(plan, v).Select(p => ownSample.GetValueOrDefault(p.Name)).OfType<double>().ToList();
            return parts.Count > 0 ? Math.Max(parts.Max(), sampleRate ?? 0) : sampleRate;
        }
        double? scoreRate = evals.Count == 0 ? null : evals.Sum(x => x.Eval["score_seconds"]!.GetValue<double>()) / evals.Sum(x => x.Eval["n"]!.GetValue<double>());
        // Diagnostics: seconds per network evaluation over those finished so far; before any, twice the sampling rate (they
        // run in float32, sampling in the run's precision, bf16-mixed on this project's machine — a rough guess).
        var diags = plan.Jobs().SelectMany(j => plan.DiagnosticsFor(j).Select(d => StudyFolder.Read(folder.Diagnostic(j, d)))).OfType<JsonObject>()
            .Where(o => o["nfe"] is not null && o["seconds"] is not null).ToList();
        double? diagRate = diags.Sum(o => o["nfe"]!.GetValue<double>()) is > 0 and var diagWork ? diags.Sum(o => o["seconds"]!.GetValue<double>()) / diagWork : 2 * sampleRate;

        var jobs = new List<JobStatus>();
        double left = 0;
        bool unknown = false;
        var nfe = new Dictionary<(string, string), int>();
        var perJob = new Dictionary<string, double>();
        foreach (var job in plan.Jobs())
        {
            if (File.Exists(folder.Result(job))) { jobs.Add(new JobStatus(job, "done", "")); continue; }
            if (StudyFolder.Read(folder.Failed(job)) is { } failed)
            {
                jobs.Add(new JobStatus(job, "failed", $"{failed["error"]} (delete {folder.Failed(job)} to retry)"));
                continue;
            }
            var tasks = plan.Tasks(job);
            int cachedEvals = tasks.Count(t => File.Exists(folder.Eval(job, t)));
            var progress = StudyFolder.Read(folder.Progress(job));
            long trained = File.Exists(folder.TrainInfo(job)) ? plan.Steps
                : progress?["phase"]?.GetValue<string>() == "training" ? progress["step"]!.GetValue<long>() : 0;
            var holder = RunLock.Read(folder.Lock(job));
            bool running = holder is not null && !holder.IsStale();
            string detail = progress?["phase"]?.GetValue<string>() switch
            {
                "training" => $"training step {trained}/{plan.Steps}",
                "evaluation" => $"evaluation {progress!["done"]!.GetValue<int>() + 1} of {progress["total"]} ({progress["current"]})",
                "diagnostic" => $"diagnostic {progress!["current"]}",
                _ => "",
            };
            if (!running) detail = trained > 0 || cachedEvals > 0 ? $"partial: trained {trained}/{plan.Steps} steps, {cachedEvals}/{tasks.Count} evaluations cached" : "";
            jobs.Add(new JobStatus(job, running ? "running" : "left", detail));

            double? trainRate = VariantTrainRate(job.Variant), jobSampleRate = VariantSampleRate(job.Variant);
            if (trainRate is null || jobSampleRate is null || scoreRate is null) { unknown = true; continue; }
            double before = left;
            left += (plan.Steps - trained) * trainRate.Value;
            foreach (var t in tasks.Where(t => !File.Exists(folder.Eval(job, t))))
            {
                if (!nfe.TryGetValue((job.Variant.Name, t.Label), out int k))
                {
                    var cfg = plan.ConfigFor(job);
                    var schedule = cfg.Schedule.Build();
                    k = nfe[(job.Variant.Name, t.Label)] = Samplers.Create(SampleRun.Resolve(cfg.Sample, t.Assignments, schedule.T), schedule, false).Evaluations;
                }
                left += (t.N ?? plan.Evaluation.N) * ((double)k * jobSampleRate.Value + scoreRate.Value);
            }
            int T = plan.ConfigFor(job).Schedule.Timesteps;
            foreach (var d in plan.DiagnosticsFor(job).Where(d => !File.Exists(folder.Diagnostic(job, d))))
                left += d.Evaluations(T) * diagRate!.Value;
            perJob[job.Id] = left - before;
        }
        var c = CultureInfo.InvariantCulture;
        string estimate = unknown
            ? "no estimate yet (it needs one finished training for the training rate and one finished evaluation for the evaluation rates)"
            : string.Create(c, $"estimated from {trainRates.Count} finished training(s) ({globalTrain:G3} s/step on average; each variant's own rates where it has them, a combined variant's from its parts') and {evals.Count} evaluation(s) (sampling {1000 * sampleRate:G3} ms per sample·NFE, scoring {1000 * scoreRate:G3} ms per sample); serial time, divide by the number of workers");
        return new StudyStatus { Jobs = jobs, SecondsLeft = unknown ? null : left, Estimate = estimate, JobSecondsLeft = perJob };
    }

    /// <summary>
    /// The variants <paramref name="v"/> combines: the others (the baseline aside) whose remedies and assignments are all
    /// among its own.
    /// </summary>
    public static IReadOnlyList<StudyVariant> Parts(StudyPlan plan, StudyVariant v)
    {
        var mine = v.Remedies.Concat(v.Sets).ToHashSet();
        return plan.Variants.Where(o => o.Name != v.Name && o.Name != plan.Baseline && o.Remedies.Count + o.Sets.Count > 0
                                        && o.Remedies.Concat(o.Sets).All(mine.Contains)).ToList();
    }

    public string ToText()
    {
        var sb = new StringBuilder();
        foreach (var j in Jobs) sb.AppendLine($"{j.Job.Id,-40} {j.State,-8} {j.Detail}".TrimEnd());
        sb.AppendLine($"{Count("done")} done, {Count("running")} running, {Count("left")} left" + (Count("failed") > 0 ? $", {Count("failed")} failed" : "") + $" of {Jobs.Count} jobs");
        sb.AppendLine(SecondsLeft is double s ? $"left: {Hours(s)} of work — {Estimate}" : $"left: {Estimate}");
        return sb.ToString();
    }

    private static string Hours(double s) => s >= 3600 ? (s / 3600).ToString("F1", CultureInfo.InvariantCulture) + " h"
        : s >= 60 ? (s / 60).ToString("F0", CultureInfo.InvariantCulture) + " min" : s.ToString("F0", CultureInfo.InvariantCulture) + " s";
}
