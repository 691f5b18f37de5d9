using System.Diagnostics;
using System.Text.Json.Nodes;
using Diffusion.Config;
using Diffusion.Training;

namespace Diffusion.Study;

/// <summary>
/// A worker of <c>diffusion study</c>: takes the plan's jobs in order, skips the finished ones (those with a result file)
/// and those another worker has claimed (a live <c>job.lock</c>), and runs each one it claims to its result file. Any
/// number of workers, in one process or several, may run the same plan in the same folder.
/// <para>
/// A job trains its variant with its seed to the budget, stopping at each evaluation step to copy the checkpoint
/// (<see cref="Trainer.Run(long?)"/>: the learning-rate schedule counts to the budget, so the stops change nothing), then
/// evaluates each checkpoint × sampler (and sweep point) with <see cref="StudyEvaluator"/>, caching each evaluation as a
/// file, and finally writes the result. A job whose training fails (diverges) is recorded in
/// <c>failed.json</c> and skipped from then on, and the worker goes on. A killed worker loses at most the training since the last checkpoint
/// (<c>train.checkpoint-every</c>; the run resumes exactly) or the one evaluation in progress; a finished job is never redone.
/// A worker given a deadline (<see cref="Until"/>) stops its job there without losing the training done.
/// </para>
/// </summary>
public sealed class StudyRunner(StudyPlan plan, string outDir, Action<string>? log = null)
{
    private readonly StudyFolder folder = new(outDir);
    private StudyEvaluator? evaluator;

    /// <summary>Called at the points a kill may hit — "step N" after each training step, "evaluated KEY" after each cached evaluation; an exception thrown from it stops the worker as a kill would (tests).</summary>
    public Action<StudyJob, string>? OnEvent { get; set; }
    /// <summary>Training sessions (new or resumed) this worker ran.</summary>
    public int TrainingSessions { get; private set; }
    /// <summary>Evaluations this worker computed.</summary>
    public int Evaluations { get; private set; }
    /// <summary>Jobs this worker finished.</summary>
    public List<string> Finished { get; } = [];
    /// <summary>
    /// When set, a job is claimed only if its estimated time left (<see cref="StudyStatus.JobSecondsLeft"/>: the
    /// measured rates, what is already trained or evaluated counted) ends before this instant — so a worker on a machine
    /// that will be taken away at a known time does not start work it cannot finish. A job without an estimate yet is
    /// taken. Jobs passed over are listed in <see cref="Deferred"/>. A job still running at this instant (its estimate
    /// was short, or <see cref="Fill"/> took it) stops there: its training writes a checkpoint at the step reached, an
    /// evaluation in progress is dropped, and the job resumes from there in a later run on the same folder
    /// (<see cref="Stopped"/>).
    /// </summary>
    public DateTime? Until { get; set; }
    /// <summary>
    /// With <see cref="Until"/>: once no job left fits before it, take the others too, in plan order, to be stopped at
    /// <see cref="Until"/> — the time would otherwise stand idle; their work counts only if the folder survives until a
    /// later run.
    /// </summary>
    public bool Fill { get; set; }
    /// <summary>
    /// When set, only these jobs (by <see cref="StudyJob.Id"/>, e.g. <c>baseline-seed1</c>) are claimed; the others are
    /// left to other workers. For re-running one finished job in a fresh folder to check that it reproduces, or for
    /// giving one heavy job a worker of its own. Each must be a job of the plan (checked by <see cref="RunAll"/>).
    /// </summary>
    public IReadOnlyCollection<string>? Only { get; set; }
    /// <summary>The clock <see cref="Until"/> is read against (UTC; tests set their own).</summary>
    public Func<DateTime> Clock { get; set; } = () => DateTime.UtcNow;
    /// <summary>The job stopped at <see cref="Until"/>, and where it stopped; null when none was.</summary>
    public (string Job, string Where)? Stopped { get; private set; }
    /// <summary>Jobs this worker passed over because they would not finish before <see cref="Until"/>, with the estimated seconds.</summary>
    public Dictionary<string, double> Deferred { get; } = [];
    /// <summary>Jobs that failed in this worker with a user error (recorded in their <c>failed.json</c>, skipped by every worker until it is deleted).</summary>
    public List<(string Job, string Error)> Failed { get; } = [];

    /// <summary>Checks the plan, then runs every unclaimed, unfinished job; returns the number this worker finished.</summary>
    public int RunAll()
    {
        plan.Validate();   // every problem of the plan before anything trains
        if (Only is not null)
        {
            var jobs = plan.Jobs();
            if (Only.Count == 0) throw new UserError("study: --job: expected one or more job names (as --status lists them), got none");
            foreach (string id in Only)
                if (!jobs.Any(j => j.Id == id))
                    throw new UserError($"study: --job {id}: no such job in plan '{plan.Name}'; expected one of {string.Join(", ", jobs.Select(j => j.Id))}");
            foreach (var job in jobs.Where(j => Only.Contains(j.Id) && File.Exists(folder.Result(j))))
                log?.Invoke($"study: {job.Id} is finished here ({folder.Result(job)}), so it is not redone; to check that it reproduces, run it in a fresh --out");
        }
        try
        {
            // Passes over the jobs until one claims nothing: a job skipped because another worker held it is looked at
            // again, and taken if that worker has died meanwhile (its lock is then stale).
            while (Pass(fitOnly: true)) { }
            if (Fill && Until is not null)
                while (!StopDue() && Pass(fitOnly: false)) { }
            return Finished.Count;
        }
        finally
        {
            evaluator?.Dispose();
            evaluator = null;
        }
    }

    // Whether Until has come: the job in progress stops, and nothing more is claimed.
    private bool StopDue() => Until is DateTime until && Clock() >= until.ToUniversalTime();

    // Stops the job in progress at Until; caught in Pass.
    private sealed class StopAtUntil(string where) : Exception(where);

    private void StopIfDue(string where)
    {
        if (StopDue()) throw new StopAtUntil(where);
    }

    // One pass over the jobs in plan order; true when it claimed one. With fitOnly, jobs that would not finish before
    // Until are passed over (and listed in Deferred).
    private bool Pass(bool fitOnly)
    {
        bool claimed = false;
        foreach (var job in plan.Jobs())
        {
            if (StopDue()) return false;
            if (Only is not null && !Only.Contains(job.Id)) continue;
            if (File.Exists(folder.Result(job)) || File.Exists(folder.Failed(job))) continue;
            if (fitOnly && Until is DateTime until && StudyStatus.Of(plan, outDir).JobSecondsLeft.TryGetValue(job.Id, out double need)
                && Clock().AddSeconds(need) > until.ToUniversalTime())
            {
                if (Deferred.TryAdd(job.Id, need))
                    log?.Invoke($"study: {job.Id} needs ≈ {need / 60:F0} min, more than is left before --until {until.ToUniversalTime():HH:mm} UTC; " +
                                (Fill ? "taken later if nothing else fits (--fill)" : "left for later"));
                continue;
            }
            Directory.CreateDirectory(folder.Work(job));
            using var claim = RunLock.TryAcquire(folder.Work(job), StudyFolder.LockFile, log);
            if (claim is null) continue;                            // another worker has it
            if (File.Exists(folder.Result(job)) || File.Exists(folder.Failed(job))) continue;   // finished (or failed) meanwhile
            claimed = true;
            if (!fitOnly && Deferred.Remove(job.Id))
                log?.Invoke($"study: {job.Id}: taken to fill the time before --until (--fill); it stops there");
            try
            {
                RunJob(job);
                Finished.Add(job.Id);
            }
            catch (StopAtUntil stop)
            {
                Stopped = (job.Id, stop.Message);
                log?.Invoke($"study: {job.Id} stopped at --until {Until!.Value.ToUniversalTime():HH:mm} UTC ({stop.Message}); it resumes from there in a later run on this folder");
                return false;
            }
            catch (StudyJobFailedError e)
            {
                // The job's own problem (its training diverged): recorded, and the worker goes on with the others.
                StudyFolder.Write(folder.Failed(job), new JsonObject { ["job"] = job.Id, ["error"] = e.Message, ["utc"] = DateTime.UtcNow.ToString("o") });
                Failed.Add((job.Id, e.Message));
                log?.Invoke($"study: {job.Id} failed: {e.Message} (recorded in {folder.Failed(job)}; delete it to retry)");
            }
        }
        return claimed;
    }

    private void Progress(StudyJob job, JsonObject o)
    {
        o["updated_utc"] = DateTime.UtcNow.ToString("o");
        StudyFolder.Write(folder.Progress(job), o);
    }

    private void RunJob(StudyJob job)
    {
        var cfg = plan.ConfigFor(job);
        log?.Invoke($"study: {job.Id}");
        var info = Train(job, cfg);
        var tasks = plan.Tasks(job);
        var evals = new JsonArray();
        TrainedModel? model = null;   // the checkpoint of the current step, loaded once for its evaluations
        try
        {
            for (int i = 0; i < tasks.Count; i++)
            {
                var task = tasks[i];
                string path = folder.Eval(job, task);
                var cached = StudyFolder.Read(path);
                string identity = plan.Identity(task);
                if (cached?["identity"]?.GetValue<string>() != identity)
                {
                    StopIfDue($"before evaluation {i + 1} of {tasks.Count}, {task.Label} at step {task.Step}");
                    Progress(job, new JsonObject { ["phase"] = "evaluation", ["done"] = i, ["total"] = tasks.Count, ["current"] = task.Label + $" at step {task.Step}" });
                    evaluator ??= new StudyEvaluator(plan, outDir, cfg, log);
                    evaluator.CheckStop = () => StopIfDue($"in evaluation {i + 1} of {tasks.Count}, {task.Label} at step {task.Step}, which is dropped");
                    if (model?.Step != task.Step)
                    {
                        model?.Dispose();
                        model = TrainedModel.Load(folder.Checkpoint(job, task.Step));
                    }
                    cached = evaluator.Evaluate(model, task);
                    cached["identity"] = identity;
                    StudyFolder.Write(path, cached);
                    cached = StudyFolder.Read(path)!;   // as a resumed job reads it: the result is the same either way
                    Evaluations++;
                    var scores = cached["metrics"]!;
                    log?.Invoke($"study: {job.Id} step {task.Step} {task.Label}: " +
                                string.Join(", ", StudyPlan.LowerIsBetter.Keys.Where(k => scores[k] is not null).Select(k => $"{k} {StudyReport.Number(scores[k]!.GetValue<double>())}")));
                    OnEvent?.Invoke(job, "evaluated " + task.Key);
                }
                evals.Add(cached);
            }
        }
        finally { model?.Dispose(); }
        var diagnostics = new JsonObject();
        foreach (var d in plan.DiagnosticsFor(job))
        {
            string path = folder.Diagnostic(job, d);
            var cached = StudyFolder.Read(path);
            if (cached?["identity"]?.GetValue<string>() != d.Identity())
            {
                StopIfDue($"before the diagnostic {d.Name}");
                Progress(job, new JsonObject { ["phase"] = "diagnostic", ["current"] = d.Name });
                log?.Invoke($"study: {job.Id}: diagnostic {d.Name} (n = {d.N}) at step {plan.Steps}");
                cached = StudyDiagnostics.Run(d, folder.Checkpoint(job, plan.Steps), job.Variant.Name);
                cached["identity"] = d.Identity();
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                StudyFolder.Write(path, cached);
                cached = StudyFolder.Read(path)!;
                log?.Invoke($"study: {job.Id}: diagnostic {d.Name}: {StudyDiagnostics.Summary(d, cached)} ({cached["seconds"]} s)");
                OnEvent?.Invoke(job, "diagnosed " + d.Name);
            }
            diagnostics[d.Name] = cached;
        }
        var loss = RunLog.Read(Path.Combine(folder.Run(job), RunLog.FileName));
        long last = plan.Steps;
        var tail = loss.Where(e => e.Step > last - Math.Min(100, last)).ToList();
        var result = new JsonObject
        {
            ["plan"] = plan.Name,
            ["job"] = job.Id,
            ["variant"] = job.Variant.Name,
            ["seed"] = job.Seed,
            // The run's own config.json: as trained (train.precision auto resolved).
            ["config"] = JsonNode.Parse(File.ReadAllText(Path.Combine(folder.Run(job), Training.RunFolder.ConfigFile))),
            ["parameters"] = info["parameters"]?.DeepClone(),
            ["train"] = new JsonObject
            {
                ["steps"] = plan.Steps,
                ["batch_size"] = cfg.Train.BatchSize,
                ["seconds"] = info["seconds"]?.DeepClone(),
                ["steps_per_second"] = info["steps_per_second"]?.DeepClone(),
                ["cpu_seconds"] = info["cpu_seconds"]?.DeepClone(),
                ["final_loss"] = tail.Count == 0 ? null : tail.Average(e => e.Loss),
                ["final_loss_means"] = $"mean of the logged losses of the last {Math.Min(100, last)} steps",
                ["loss_curve"] = new JsonArray(loss.Select(e => (JsonNode)new JsonArray(e.Step, e.Loss)).ToArray()),
            },
            ["evaluations"] = evals,
            // Which evaluation keeps its first samples ([report] samples), or false.
            ["samples_kept"] = plan.SamplesSampler is { } kept ? $"{kept} at step {plan.Steps}, the first {plan.SamplesN}" : false,
            ["finished_utc"] = DateTime.UtcNow.ToString("o"),
            // The machine that finished the job (a job resumed elsewhere trained partly on another).
            ["machine"] = Util.MachineInfo.Describe(),
        };
        if (diagnostics.Count > 0) result.Insert(result.IndexOf("samples_kept"), "diagnostics", diagnostics);
        StudyFolder.Write(folder.Result(job), result);
        Progress(job, new JsonObject { ["phase"] = "done" });
        log?.Invoke($"study: {job.Id} done → {folder.Result(job)}");
    }

    // The first key whose value differs between the plan's config and a run's saved one (train.precision auto, which a
    // run resolves, threads and the data folder aside), or null.
    private static (string Key, string Plan, string Saved)? ChangedKey(RunConfig planned, RunConfig saved)
    {
        var a = ConfigLoader.ToTree(planned);
        var b = ConfigLoader.ToTree(saved);
        if (planned.Train.Precision == Models.Precisions.Auto) b["train"]!["precision"] = Models.Precisions.Auto;
        foreach (var t in new[] { a, b })
        {
            t["train"]!["threads"] = 0;
            t["data"]!["data-dir"] = null;
        }
        foreach (var (section, node) in a)
        {
            var other = b[section]?.AsObject();
            foreach (var (key, value) in node!.AsObject())
            {
                var v = other?[key];
                if (!JsonNode.DeepEquals(value, v)) return ($"{section}.{key}", value?.ToJsonString() ?? "null", v?.ToJsonString() ?? "null");
            }
        }
        return null;
    }

    // Trains (or resumes) the job's run to the budget, copying the checkpoint at each evaluation step; returns train.json.
    private JsonObject Train(StudyJob job, RunConfig cfg)
    {
        string runDir = folder.Run(job);
        // Work from an earlier plan whose training differs is refused, naming the key (a finished job's result is kept as it is).
        string savedConfig = Path.Combine(runDir, RunFolder.ConfigFile);
        if (File.Exists(savedConfig) && ChangedKey(cfg, ConfigLoader.FromJson(File.ReadAllText(savedConfig), savedConfig)) is { } changed)
            throw new UserError($"{plan.Path}: job {job.Id}: {changed.Key} is {changed.Plan} in the plan but {changed.Saved} in {runDir}, trained for an earlier plan; delete {folder.Work(job)} to redo the job");
        if (StudyFolder.Read(folder.TrainInfo(job)) is { } done && plan.EvalSteps.All(s => File.Exists(folder.Checkpoint(job, s)))) return done;
        bool resume = File.Exists(Path.Combine(runDir, Checkpoint.FileName));
        if (!resume && Directory.Exists(runDir)) Directory.Delete(runDir, recursive: true);   // killed before its first checkpoint
        var runCfg = resume ? TrainingRun.ResumeConfig(runDir, (int?)null, null) : cfg;
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        string cpuFile = Path.Combine(folder.Work(job), "train-cpu.json");
        var cpuBefore = StudyFolder.Read(cpuFile)?["cpu_seconds"]?.GetValue<double>() ?? 0;
        // The job's training CPU seconds, every session included; recorded at each stop so that a resume adds to them.
        double CpuSeconds() => cpuBefore + (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
        void RecordCpu() => StudyFolder.Write(cpuFile, new JsonObject { ["cpu_seconds"] = CpuSeconds() });
        TrainingSessions++;
        using var trainer = new Trainer(runCfg, runDir, resume, onMessage: m => log?.Invoke($"study: {job.Id}: {m}")) { StopRequested = StopDue };
        var lastWrite = Stopwatch.StartNew();
        trainer.OnProgress = p =>
        {
            if (lastWrite.Elapsed.TotalSeconds >= 2 || p.Step == plan.Steps)
            {
                Progress(job, new JsonObject { ["phase"] = "training", ["step"] = p.Step, ["total"] = plan.Steps, ["steps_per_second"] = Math.Round(p.StepsPerSecond, 3) });
                lastWrite.Restart();
            }
            OnEvent?.Invoke(job, $"step {p.Step}");
        };
        foreach (var s in plan.EvalSteps)
        {
            string copy = folder.Checkpoint(job, s);
            if (File.Exists(copy)) continue;
            if (trainer.Step > s) throw new InvalidOperationException($"{runDir} is at step {trainer.Step}, past the evaluation step {s} whose checkpoint copy is missing; delete {folder.Work(job)} to redo the job");
            if (trainer.Step < s)
            {
                try { trainer.Run(s); }
                catch (UserError e) { throw new StudyJobFailedError(e.Message, e); }   // diverged: the job's own failure
                if (trainer.Stopped)
                {
                    RecordCpu();
                    throw new StopAtUntil($"training at step {trainer.Step} of {plan.Steps}, checkpoint written");
                }
            }
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            string tmp = $"{copy}.tmp-{Environment.ProcessId}";
            File.Copy(Path.Combine(runDir, Checkpoint.FileName), tmp, overwrite: true);
            File.Move(tmp, copy, overwrite: true);
            RecordCpu();
        }
        double seconds = trainer.ElapsedSeconds;
        var info = new JsonObject
        {
            ["steps"] = trainer.Step,
            ["seconds"] = Math.Round(seconds, 3),
            ["steps_per_second"] = Math.Round(trainer.Step / Math.Max(seconds, 1e-9), 3),
            ["cpu_seconds"] = Math.Round(CpuSeconds(), 3),
            ["parameters"] = Models.ModelFactory.ParameterCount(trainer.Model),
        };
        StudyFolder.Write(folder.TrainInfo(job), info);
        return info;
    }
}
