using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Diffusion.Sampling;
using Diffusion.Training;

namespace Diffusion.Study;

/// <summary>Where one job stands: done (a result file), running (a live claim, with the worker's progress) or left.</summary>
public sealed record JobStatus(StudyJob Job, string State, string Detail);

/// <summary>
/// <c>diffusion study --status</c>: every job's state read from the files the workers write, and an estimate of the work
/// left from measured durations — training seconds per step (the variant's own mean over its finished jobs, else the mean
/// over all finished jobs) and evaluation seconds per sample·NFE (sampling and scoring, over every finished evaluation).
/// </summary>
public sealed class StudyStatus
{
    public required IReadOnlyList<JobStatus> Jobs { get; init; }
    /// <summary>Seconds of work left (serial), or null when nothing is measured yet.</summary>
    public double? SecondsLeft { get; init; }
    public required string Estimate { get; init; }

    public int Count(string state) => Jobs.Count(j => j.State == state);

    public static StudyStatus Of(StudyPlan plan, string outDir)
    {
        var folder = new StudyFolder(outDir);
        var results = folder.Results();
        // Training: seconds per step per variant and overall, from finished jobs.
        var trainRates = results.Where(r => r["train"]?["seconds"] is not null)
            .Select(r => (Variant: r["variant"]!.GetValue<string>(), Seconds: r["train"]!["seconds"]!.GetValue<double>(), Steps: r["train"]!["steps"]!.GetValue<long>())).ToList();
        double? globalTrain = trainRates.Count == 0 ? null : trainRates.Sum(t => t.Seconds) / trainRates.Sum(t => t.Steps);
        // Evaluation: seconds per sample·NFE from every evaluation written so far (finished jobs' and cached ones).
        var evals = results.SelectMany(r => r["evaluations"]!.AsArray().OfType<JsonObject>()).ToList();
        var work = Path.Combine(outDir, "work");
        if (Directory.Exists(work))
            foreach (var f in Directory.EnumerateFiles(work, "*.json", SearchOption.AllDirectories).Where(f => Path.GetFileName(Path.GetDirectoryName(f)) == "evals"))
                if (StudyFolder.Read(f) is { } o) evals.Add(o);
        double evalWork = evals.Sum(e => e["n"]!.GetValue<double>() * e["nfe"]!.GetValue<double>());
        double? evalRate = evalWork == 0 ? null : evals.Sum(e => e["sample_seconds"]!.GetValue<double>() + e["score_seconds"]!.GetValue<double>()) / evalWork;

        var jobs = new List<JobStatus>();
        double left = 0;
        bool unknown = false;
        var nfe = new Dictionary<(string, string), int>();
        foreach (var job in plan.Jobs())
        {
            if (File.Exists(folder.Result(job))) { jobs.Add(new JobStatus(job, "done", "")); continue; }
            var tasks = plan.Tasks(job.Variant);
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
                _ => "",
            };
            if (!running) detail = trained > 0 || cachedEvals > 0 ? $"partial: trained {trained}/{plan.Steps} steps, {cachedEvals}/{tasks.Count} evaluations cached" : "";
            jobs.Add(new JobStatus(job, running ? "running" : "left", detail));

            double? trainRate = trainRates.Where(t => t.Variant == job.Variant.Name).ToList() is { Count: > 0 } own ? own.Sum(t => t.Seconds) / own.Sum(t => t.Steps) : globalTrain;
            if (trainRate is null || evalRate is null) { unknown = true; continue; }
            left += (plan.Steps - trained) * trainRate.Value;
            foreach (var t in tasks.Where(t => !File.Exists(folder.Eval(job, t))))
            {
                if (!nfe.TryGetValue((job.Variant.Name, t.Label), out int k))
                {
                    var cfg = plan.ConfigFor(job);
                    var schedule = cfg.Schedule.Build();
                    k = nfe[(job.Variant.Name, t.Label)] = Samplers.Create(SampleRun.Resolve(cfg.Sample, t.Assignments, schedule.T), schedule, false).Evaluations;
                }
                left += plan.Evaluation.N * (double)k * evalRate.Value;
            }
        }
        var c = CultureInfo.InvariantCulture;
        string estimate = unknown
            ? "no estimate yet (it needs one finished job for the training rate and one finished evaluation for the evaluation rate)"
            : string.Create(c, $"estimated from {trainRates.Count} finished job(s) (training {globalTrain:G3} s/step on average; each variant's own rate where one of its jobs finished) and {evals.Count} evaluation(s) ({1000 * evalRate:G3} ms per sample·NFE, sampling and scoring); serial time, divide by the number of workers");
        return new StudyStatus { Jobs = jobs, SecondsLeft = unknown ? null : left, Estimate = estimate };
    }

    public string ToText()
    {
        var sb = new StringBuilder();
        foreach (var j in Jobs) sb.AppendLine($"{j.Job.Id,-40} {j.State,-8} {j.Detail}".TrimEnd());
        sb.AppendLine($"{Count("done")} done, {Count("running")} running, {Count("left")} left of {Jobs.Count} jobs");
        sb.AppendLine(SecondsLeft is double s ? $"left: {Hours(s)} of work — {Estimate}" : $"left: {Estimate}");
        return sb.ToString();
    }

    private static string Hours(double s) => s >= 3600 ? (s / 3600).ToString("F1", CultureInfo.InvariantCulture) + " h"
        : s >= 60 ? (s / 60).ToString("F0", CultureInfo.InvariantCulture) + " min" : s.ToString("F0", CultureInfo.InvariantCulture) + " s";
}
