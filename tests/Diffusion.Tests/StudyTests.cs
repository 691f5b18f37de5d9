using System.Globalization;
using System.Text.Json.Nodes;
using Diffusion.Config;
using Diffusion.Data;
using Diffusion.Diagnostics;
using Diffusion.Metrics;
using Diffusion.Study;
using Diffusion.Training;

namespace Diffusion.Tests;

/// <summary><c>diffusion study</c> on a tiny toy plan: 2 variants × 2 seeds, 30 MLP steps, checkpoints at 15 and 30, two samplers and a sweep.</summary>
public class StudyTests : IDisposable
{
    // One libtorch thread, as a study worker runs beside another (and the tiny networks gain nothing from two).
    private readonly int threads = TorchSharp.torch.get_num_threads();

    public StudyTests() => TorchSharp.torch.set_num_threads(1);

    public void Dispose() => TorchSharp.torch.set_num_threads(threads);

    private const string TinyPlan = """
        name = "tiny"
        config = "toy"
        set = ["train.batch-size=64", "train.log-every=5", "train.checkpoint-every=10", "model.hidden=32", "model.blocks=1", "train.warmup-steps=5", "schedule.timesteps=100"]
        steps = 30
        eval-steps = [15, 30]
        seeds = [0, 1]
        baseline = "baseline"

        [[variants]]
        name = "baseline"

        [[variants]]
        name = "debiased"
        remedy = ["debiased"]

        [[samplers]]
        label = "ddim-5"
        sampler = "ddim"
        steps = 5

        [[samplers]]
        label = "ddpm-10"
        sampler = "ddpm"
        steps = 10
        final-only = true

        [[sweeps]]
        name = "b"
        variant = "baseline"
        samplers = ["ddim-5"]
        points = [ { label = "1.01", options = { eps-scale-b = 1.01 } } ]

        [evaluation]
        n = 96
        seed = 1
        reference = "toy:gmm-grid"
        reference-n = 400
        features = "raw"
        metrics = ["fid", "mmd"]
        mmd-n = 96
        mixture-min-per-mode = 2

        [[claims]]
        claim = "debiased lowers FID by half"
        variant = "debiased"
        row = "ddim-5"
        effect = -0.5

        [[claims]]
        claim = "b = 1.01 is no worse"
        variant = "baseline"
        row = "ddim-5 b=1.01"
        against-row = "ddim-5"
        effect = 0

        [[claims]]
        claim = "debiased at 15 beats the baseline at 30"
        variant = "debiased"
        row = "ddim-5"
        step = 15
        metric = "mmd2"
        """;

    private static StudyPlan Plan(string dir, string text = TinyPlan)
    {
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, "plan.toml");
        File.WriteAllText(path, text);
        var plan = StudyPlan.Load(path);
        plan.Validate();
        return plan;
    }

    private static string Out(string dir) => Path.Combine(dir, "out");

    // The metrics of every evaluation of a job, keyed by step and label, as the JSON text of the numbers.
    private static Dictionary<string, string> Metrics(string outDir, string job)
    {
        var r = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "results", job + ".json")))!;
        return r["evaluations"]!.AsArray().ToDictionary(e => $"{e!["step"]} {e["label"]}", e => e!["metrics"]!.ToJsonString());
    }

    [Fact]
    public void Runs_every_job_to_one_result_file_and_a_rerun_does_no_work()
    {
        var dir = TestUtil.TempDir("study-run");
        var plan = Plan(dir);
        var runner = new StudyRunner(plan, Out(dir));
        Assert.Equal(4, runner.RunAll());
        Assert.Equal(4, runner.TrainingSessions);
        var files = Directory.GetFiles(Path.Combine(Out(dir), "results"), "*.json").Select(Path.GetFileName).Order().ToList();
        Assert.Equal(["baseline-seed0.json", "baseline-seed1.json", "debiased-seed0.json", "debiased-seed1.json"], files);

        var r = JsonNode.Parse(File.ReadAllText(Path.Combine(Out(dir), "results", "debiased-seed1.json")))!;
        Assert.Equal("debiased", (string?)r["variant"]);
        Assert.Equal(1, (long)r["seed"]!);
        Assert.Equal("debiased", (string?)r["config"]!["loss"]!["weighting"]);
        Assert.Equal(30, (int)r["config"]!["train"]!["steps"]!);
        Assert.Equal(1, (long)r["config"]!["train"]!["seed"]!);
        Assert.True((double)r["train"]!["seconds"]! > 0);
        Assert.True((double)r["train"]!["steps_per_second"]! > 0);
        Assert.True(double.IsFinite((double)r["train"]!["final_loss"]!));
        Assert.Equal(30, (long)r["train"]!["loss_curve"]!.AsArray()[^1]![0]!);
        Assert.True((long)r["parameters"]! > 0);
        // debiased: ddim-5 at 15 and 30, ddpm-10 at 30 only; the sweep is the baseline's.
        var evals = r["evaluations"]!.AsArray();
        Assert.Equal(["15 ddim-5", "30 ddim-5", "30 ddpm-10"], evals.Select(e => $"{e!["step"]} {e["label"]}"));
        Assert.Equal([5, 5, 10], evals.Select(e => (int)e!["nfe"]!));
        foreach (var e in evals)
        {
            Assert.True((double)e!["metrics"]!["fid"]! > 0);
            Assert.NotNull(e["metrics"]!["mmd2"]);
            Assert.NotNull(e["metrics"]!["mixture_within_3sigma"]);
            Assert.True((double)e["sample_seconds"]! >= 0);
            Assert.Equal(96, (int)e["n"]!);
        }
        var b = JsonNode.Parse(File.ReadAllText(Path.Combine(Out(dir), "results", "baseline-seed0.json")))!;
        Assert.Equal(5, b["evaluations"]!.AsArray().Count);   // + the sweep point at both checkpoints
        Assert.Contains(b["evaluations"]!.AsArray(), e => (string?)e!["label"] == "ddim-5 b=1.01" && (string?)e["sampler"] is string s && s.Contains("1.01"));

        // A second worker finds nothing to do: no training, no evaluation, no file rewritten.
        var stamps = Directory.GetFiles(Out(dir), "*.json", SearchOption.AllDirectories).ToDictionary(f => f, File.GetLastWriteTimeUtc);
        var again = new StudyRunner(plan, Out(dir));
        Assert.Equal(0, again.RunAll());
        Assert.Equal(0, again.TrainingSessions);
        Assert.Equal(0, again.Evaluations);
        foreach (var (f, t) in stamps) Assert.Equal(t, File.GetLastWriteTimeUtc(f));
    }

    [Fact]
    public void A_killed_job_resumes_to_identical_metrics()
    {
        var dir = TestUtil.TempDir("study-resume");
        var plan = Plan(dir);
        string whole = Path.Combine(dir, "whole"), killedInTraining = Path.Combine(dir, "killed-train"), killedInEval = Path.Combine(dir, "killed-eval");
        new StudyRunner(plan, whole).RunAll();

        // Killed at step 25 of the first job (its last checkpoint is step 20): the run resumes from it.
        var k1 = new StudyRunner(plan, killedInTraining) { OnEvent = (job, e) => { if (e == "step 25") throw new OperationCanceledException("kill"); } };
        Assert.Throws<OperationCanceledException>(() => k1.RunAll());
        Assert.False(File.Exists(Path.Combine(killedInTraining, "work", "baseline-seed0", StudyFolder.LockFile)));   // released
        // Killed right after the first evaluation: only the others are computed again.
        var k2 = new StudyRunner(plan, killedInEval) { OnEvent = (job, e) => { if (e.StartsWith("evaluated", StringComparison.Ordinal)) throw new OperationCanceledException("kill"); } };
        Assert.Throws<OperationCanceledException>(() => k2.RunAll());
        Assert.Equal(1, k2.Evaluations);

        var r1 = new StudyRunner(plan, killedInTraining);
        Assert.Equal(4, r1.RunAll());
        var r2 = new StudyRunner(plan, killedInEval);
        Assert.Equal(4, r2.RunAll());
        Assert.Equal(3, r2.TrainingSessions);               // the killed job's training was complete
        Assert.Equal(5 + 3 + 5 + 3 - 1, r2.Evaluations);    // all but the one cached before the kill
        foreach (var job in plan.Jobs())
        {
            var expected = Metrics(whole, job.Id);
            Assert.Equal(expected, Metrics(killedInTraining, job.Id));
            Assert.Equal(expected, Metrics(killedInEval, job.Id));
        }

        // A finished job whose result is deleted (with some cached evaluations) reproduces its numbers.
        File.Delete(Path.Combine(killedInEval, "results", "baseline-seed1.json"));
        foreach (var f in Directory.GetFiles(Path.Combine(killedInEval, "work", "baseline-seed1", "evals"), "0000030-*")) File.Delete(f);
        var r3 = new StudyRunner(plan, killedInEval);
        Assert.Equal(1, r3.RunAll());
        Assert.Equal(0, r3.TrainingSessions);
        Assert.Equal(3, r3.Evaluations);
        Assert.Equal(Metrics(whole, "baseline-seed1"), Metrics(killedInEval, "baseline-seed1"));
    }

    [Fact]
    public void Work_of_an_earlier_plan_is_refused_when_its_training_differs_and_reevaluated_when_its_evaluation_does()
    {
        var dir = TestUtil.TempDir("study-changed");
        var plan = Plan(dir);
        new StudyRunner(plan, Out(dir)).RunAll();
        foreach (var f in Directory.GetFiles(Path.Combine(Out(dir), "results"))) File.Delete(f);

        // Another evaluation (n = 64): the checkpoints are reused, every evaluation is made again.
        var fewer = Plan(Path.Combine(dir, "fewer"), TinyPlan.Replace("n = 96", "n = 64"));
        var r = new StudyRunner(fewer, Out(dir));
        Assert.Equal(4, r.RunAll());
        Assert.Equal(0, r.TrainingSessions);
        Assert.Equal(16, r.Evaluations);
        Assert.Equal(64, (int)JsonNode.Parse(File.ReadAllText(Path.Combine(Out(dir), "results", "baseline-seed0.json")))!["evaluations"]![0]!["n"]!);

        // Another training (a different learning rate): refused, naming the key, before anything runs.
        File.Delete(Path.Combine(Out(dir), "results", "baseline-seed0.json"));
        var other = Plan(Path.Combine(dir, "other"), TinyPlan.Replace("\"train.warmup-steps=5\"", "\"train.warmup-steps=5\", \"train.lr=2e-3\""));
        var e = Assert.ThrowsAny<UserError>(() => new StudyRunner(other, Out(dir)).RunAll());
        Assert.Contains("train.lr", e.Message);
        Assert.Contains("baseline-seed0", e.Message);
    }

    [Fact]
    public void A_failing_job_is_recorded_and_skipped_while_the_others_finish()
    {
        var dir = TestUtil.TempDir("study-failed");
        var text = TinyPlan.Replace("name = \"debiased\"\nremedy = [\"debiased\"]", "name = \"debiased\"\nset = [\"train.lr=1e30\", \"train.grad-clip=0\"]");
        var plan = Plan(dir, text);
        var runner = new StudyRunner(plan, Out(dir));
        Assert.Equal(2, runner.RunAll());
        Assert.Equal(["debiased-seed0", "debiased-seed1"], runner.Failed.Select(f => f.Job));
        Assert.Contains("diverged", runner.Failed[0].Error);
        var status = StudyStatus.Of(plan, Out(dir));
        Assert.Equal(2, status.Count("failed"));
        Assert.Contains("2 done, 0 running, 0 left, 2 failed of 4 jobs", status.ToText());
        // Skipped by the next worker until failed.json goes.
        var again = new StudyRunner(plan, Out(dir));
        Assert.Equal(0, again.RunAll());
        Assert.Equal(0, again.TrainingSessions);
        var report = StudyReport.Write(plan, Out(dir), Path.Combine(dir, "report.md"), "diffusion study …");
        Assert.Contains("Failed (see `diffusion study --status`): debiased-seed0, debiased-seed1.", report);
    }

    [Fact]
    public void A_claim_left_by_a_dead_worker_is_taken_over()
    {
        var dir = TestUtil.TempDir("study-stale");
        var plan = Plan(dir);
        var folder = new StudyFolder(Out(dir));
        var job = plan.Jobs()[0];
        Directory.CreateDirectory(folder.Work(job));
        using (var gone = System.Diagnostics.Process.Start("true")!) { gone.WaitForExit(); RunLock.Write(folder.Lock(job), new RunLock.Holder(gone.Id, Environment.MachineName, DateTime.UtcNow.AddMinutes(-1))); }
        Assert.Equal("left", StudyStatus.Of(plan, Out(dir)).Jobs[0].State);   // not running: its worker is gone
        var notes = new List<string>();
        var runner = new StudyRunner(plan, Out(dir), m => { lock (notes) notes.Add(m); });
        Assert.Equal(4, runner.RunAll());
        Assert.Contains(notes, n => n.Contains("took over the stale lock", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Two_worker_processes_share_the_jobs()
    {
        var dir = TestUtil.TempDir("study-processes");
        var plan = Plan(dir);
        string path = Path.Combine(dir, "plan.toml");
        var a = Task.Run(() => CliTests.Run("study", path, "--out", Out(dir), "--threads", "1"));
        var b = Task.Run(() => CliTests.Run("study", path, "--out", Out(dir), "--threads", "1"));
        var results = await Task.WhenAll(a, b);
        Assert.All(results, r => Assert.True(r.Code == 0, r.Err));
        // Every job is done by exactly one of the two.
        var done = results.SelectMany(r => r.Err.Split('\n').Where(l => l.StartsWith("study: ", StringComparison.Ordinal) && l.Contains(" done → ", StringComparison.Ordinal))
                                                    .Select(l => l.Split(' ')[1])).ToList();
        Assert.Equal(plan.Jobs().Select(j => j.Id).Order(), done.Order());
        Assert.Equal(4, Directory.GetFiles(Path.Combine(Out(dir), "results")).Length);
        var status = CliTests.Run("study", path, "--out", Out(dir), "--status");
        Assert.Equal(0, status.Code);
        Assert.Contains("4 done, 0 running, 0 left of 4 jobs", status.Out);
    }

    [Fact]
    public async Task Two_workers_never_run_the_same_job()
    {
        var dir = TestUtil.TempDir("study-workers");
        var plan = Plan(dir);
        // Each worker, at its first training step, waits until the other is training too: so both hold a job at once.
        using var bothTraining = new CountdownEvent(2);
        Action<StudyJob, string> Meet()
        {
            bool first = true;
            return (job, e) =>
            {
                if (!first || !e.StartsWith("step", StringComparison.Ordinal)) return;
                first = false;
                bothTraining.Signal();
                Assert.True(bothTraining.Wait(TimeSpan.FromSeconds(30)), "the other worker never started a job");
            };
        }
        var a = new StudyRunner(plan, Out(dir)) { OnEvent = Meet() };
        var b = new StudyRunner(plan, Out(dir)) { OnEvent = Meet() };
        var ta = Task.Run(a.RunAll);
        var tb = Task.Run(b.RunAll);
        await Task.WhenAll(ta, tb);
        Assert.Equal(4, a.Finished.Count + b.Finished.Count);
        Assert.Empty(a.Finished.Intersect(b.Finished));
        Assert.NotEmpty(a.Finished);
        Assert.NotEmpty(b.Finished);
        Assert.Equal(4, a.TrainingSessions + b.TrainingSessions);
        Assert.Equal(plan.Jobs().Select(j => j.Id).Order(), a.Finished.Concat(b.Finished).Order());
    }

    [Fact]
    public void Evaluation_paths_are_relative_to_the_plan()
    {
        var dir = TestUtil.TempDir("study-paths");
        var plan = Plan(dir, TinyPlan.Replace("mmd-n = 96", "mmd-n = 96\nclassifier-cache = \"pinned/classifiers\""));
        Assert.Equal(Path.Combine(Path.GetFullPath(dir), "pinned", "classifiers"), plan.Evaluation.ClassifierCache);
    }

    [Fact]
    public void Jobs_take_seed_rounds_of_multi_seed_variants_first_and_single_seed_variants_last()
    {
        // baseline has 3 seeds, a single-seed side variant sits between two 2-seed variants in the plan.
        string text = TinyPlan
            .Replace("""
                [[variants]]
                name = "debiased"
                """, """
                [[variants]]
                name = "side"
                set = ["model.hidden=16"]
                seeds = [7]

                [[variants]]
                name = "debiased"
                """)
            .Replace("""
                [[variants]]
                name = "baseline"
                """, """
                [[variants]]
                name = "baseline"
                seeds = [0, 1, 2]
                """);
        var plan = Plan(TestUtil.TempDir("study-order"), text);
        Assert.Equal(["baseline-seed0", "debiased-seed0", "baseline-seed1", "debiased-seed1", "baseline-seed2", "side-seed7"],
            plan.Jobs().Select(j => j.Id).ToArray());
    }

    /// <summary>
    /// A variant with no training of its own yet that combines others is estimated as the baseline plus each part's extra
    /// seconds per step, sampling at its slowest part's rate (closed form from result files made up for the purpose).
    /// </summary>
    [Fact]
    public void A_combined_variant_is_estimated_from_its_parts()
    {
        var dir = TestUtil.TempDir("study-parts");
        var text = TinyPlan.Replace("""
                [[variants]]
                name = "debiased"
                remedy = ["debiased"]
                """, """
                [[variants]]
                name = "a"
                set = ["perturbation.gamma=0.1"]

                [[variants]]
                name = "b"
                set = ["time-sharing.intervals=5"]

                [[variants]]
                name = "ab"
                set = ["perturbation.gamma=0.1", "time-sharing.intervals=5"]
                """);
        text = text[..text.IndexOf("[[claims]]", StringComparison.Ordinal)];
        var plan = Plan(dir, text);
        Assert.Equal(["a", "b"], StudyStatus.Parts(plan, plan.Variant("ab")).Select(v => v.Name).ToArray());
        Assert.Empty(StudyStatus.Parts(plan, plan.Variant("a")));
        var folder = new StudyFolder(Out(dir));
        Directory.CreateDirectory(Path.Combine(Out(dir), "results"));
        // Seed 0 of the baseline, a and b finished: 1, 3 and 2 s per step; sampling 1, 1 and 4 ms per sample·NFE.
        foreach (var (variant, perStep, perSampleNfe) in new[] { ("baseline", 1.0, 0.001), ("a", 3.0, 0.001), ("b", 2.0, 0.004) })
        {
            var job = plan.Jobs().First(j => j.Variant.Name == variant && j.Seed == 0);
            var evals = new JsonArray();
            foreach (var t in plan.Tasks(job))
                evals.Add(new JsonObject { ["step"] = t.Step, ["label"] = t.Label, ["n"] = 96, ["nfe"] = 10, ["sample_seconds"] = 96 * 10 * perSampleNfe, ["score_seconds"] = 0.5 });
            StudyFolder.Write(folder.Result(job), new JsonObject
            {
                ["train"] = new JsonObject { ["steps"] = plan.Steps, ["seconds"] = perStep * plan.Steps },
                ["evaluations"] = evals,
            });
        }
        var left = StudyStatus.Of(plan, Out(dir)).JobSecondsLeft;
        // ab trains at 1 + (3 − 1) + (2 − 1) = 4 s per step and samples at b's 4 ms: b's own seed 1 plus 2 s per step.
        Assert.Equal(left["b-seed1"] + plan.Steps * (4.0 - 2.0), left["ab-seed0"], 6);
        // a's seed 1 at its own rates: 1 s per step more than b's, and 3 ms less per sample·NFE over the same rows
        // (ddim-5 at both evaluation steps, ddpm-10 at the last: 5 + 5 + 10 evaluations of 96 samples).
        var nfe = plan.Tasks(plan.Jobs().First(j => j.Id == "a-seed1")).Sum(t => t.Label == "ddpm-10" ? 10 : 5);
        Assert.Equal(20, nfe);
        Assert.Equal(left["b-seed1"] + plan.Steps * 1.0 - 96 * nfe * 0.003, left["a-seed1"], 6);
    }

    [Fact]
    public void Until_leaves_jobs_that_would_not_finish_in_time_for_later()
    {
        var dir = TestUtil.TempDir("study-until");
        var plan = Plan(dir);
        // Nothing measured yet: the first job is taken (no estimate); from then on every job's estimate passes the
        // deadline. The clock stands still, so the deadline never comes.
        var t0 = DateTime.UtcNow;
        var until = t0.AddMilliseconds(1);
        var early = new StudyRunner(plan, Out(dir)) { Until = until, Clock = () => t0 };
        Assert.Equal(1, early.RunAll());
        Assert.Null(early.Stopped);
        Assert.Equal(plan.Jobs().Skip(1).Select(j => j.Id).Order(), early.Deferred.Keys.Order());
        Assert.All(early.Deferred.Values, s => Assert.True(s > 0));
        var status = StudyStatus.Of(plan, Out(dir));
        Assert.Equal(3, status.Count("left"));
        Assert.Equal(3, status.JobSecondsLeft.Count);
        // A fresh folder on another machine holding only the finished result (its work folder gone) estimates the
        // same work from the result's durations: the result file keeps the job's train.json and evaluations' seconds.
        string fresh = Path.Combine(dir, "fresh");
        Directory.CreateDirectory(Path.Combine(fresh, "results"));
        var first = plan.Jobs()[0];
        File.Copy(new StudyFolder(Out(dir)).Result(first), new StudyFolder(fresh).Result(first));
        var copied = StudyStatus.Of(plan, fresh);
        Assert.NotNull(copied.SecondsLeft);
        Assert.Equal(status.JobSecondsLeft.Keys.Order(), copied.JobSecondsLeft.Keys.Order());
        foreach (var (job, seconds) in status.JobSecondsLeft) Assert.Equal(seconds, copied.JobSecondsLeft[job], 6);
        // --fill: with nothing left that fits, the next job in plan order is taken anyway and stopped at the deadline
        // (the clock reaches it after step 5); the others stay deferred.
        var now = t0;
        var filler = new StudyRunner(plan, Out(dir)) { Until = until, Fill = true, Clock = () => now, OnEvent = (_, e) => { if (e == "step 5") now = until; } };
        Assert.Equal(0, filler.RunAll());
        string second = plan.Jobs()[1].Id;
        Assert.Equal((second, "training at step 5 of 30, checkpoint written"), filler.Stopped);
        Assert.Equal(plan.Jobs().Skip(2).Select(j => j.Id).Order(), filler.Deferred.Keys.Order());
        Assert.Equal(3, StudyStatus.Of(plan, Out(dir)).Count("left"));
        // With time enough, a later worker takes them all.
        var later = new StudyRunner(plan, Out(dir)) { Until = DateTime.UtcNow.AddHours(1) };
        Assert.Equal(3, later.RunAll());
        Assert.Empty(later.Deferred);
    }

    [Fact]
    public void Until_stops_the_job_in_progress_where_it_is_and_a_later_run_resumes_it_to_identical_metrics()
    {
        var dir = TestUtil.TempDir("study-stop");
        var plan = Plan(dir);
        string whole = Path.Combine(dir, "whole"), inTraining = Path.Combine(dir, "in-training"), inEval = Path.Combine(dir, "in-eval");
        new StudyRunner(plan, whole).RunAll();
        var t0 = DateTime.UtcNow;
        var until = t0.AddHours(1);

        // The clock reaches --until after step 17 of the first job (checkpoints every 10 steps): its training stops
        // there with a checkpoint of step 17, the lock is released and nothing else is claimed.
        var now = t0;
        var a = new StudyRunner(plan, inTraining) { Until = until, Clock = () => now, OnEvent = (_, e) => { if (e == "step 17") now = until; } };
        Assert.Equal(0, a.RunAll());
        Assert.Equal(("baseline-seed0", "training at step 17 of 30, checkpoint written"), a.Stopped);
        Assert.Equal(1, a.TrainingSessions);
        Assert.False(File.Exists(Path.Combine(inTraining, "work", "baseline-seed0", StudyFolder.LockFile)));
        using (var m = TrainedModel.Load(Path.Combine(inTraining, "work", "baseline-seed0", "run"))) Assert.Equal(17, m.Step);

        // It passes during the sampling of the second evaluation: that one is dropped, the first stays cached.
        int calls = -1;
        var b = new StudyRunner(plan, inEval)
        {
            Until = until,
            Clock = () => calls >= 0 && ++calls > 1 ? until : t0,   // the check before the second evaluation passes; the first sampler step's does not
            OnEvent = (_, e) => { if (e.StartsWith("evaluated", StringComparison.Ordinal) && calls < 0) calls = 0; },
        };
        Assert.Equal(0, b.RunAll());
        Assert.Equal("baseline-seed0", b.Stopped?.Job);
        Assert.StartsWith("in evaluation 2 of 5", b.Stopped?.Where);
        Assert.Equal(1, b.Evaluations);
        Assert.Single(Directory.GetFiles(Path.Combine(inEval, "work", "baseline-seed0", "evals")));

        // Later runs without a deadline finish every job with the uninterrupted run's numbers.
        var r1 = new StudyRunner(plan, inTraining);
        Assert.Equal(4, r1.RunAll());
        var r2 = new StudyRunner(plan, inEval);
        Assert.Equal(4, r2.RunAll());
        Assert.Equal(5 + 3 + 5 + 3 - 1, r2.Evaluations);
        foreach (var job in plan.Jobs())
        {
            Assert.Equal(Metrics(whole, job.Id), Metrics(inTraining, job.Id));
            Assert.Equal(Metrics(whole, job.Id), Metrics(inEval, job.Id));
        }
    }

    [Fact]
    public void Until_parses_a_utc_clock_time_or_a_date_time_and_refuses_the_past()
    {
        var now = new DateTime(2026, 12, 3, 9, 30, 0, DateTimeKind.Utc);
        Assert.Equal(new DateTime(2026, 12, 3, 10, 25, 0, DateTimeKind.Utc), Diffusion.Cli.StudyCommand.ParseUntil("10:25", now));
        Assert.Equal(new DateTime(2026, 12, 3, 11, 0, 0, DateTimeKind.Utc), Diffusion.Cli.StudyCommand.ParseUntil("2026-12-03T12:00:00+01:00", now));
        Assert.Contains("already past", Assert.ThrowsAny<Exception>(() => Diffusion.Cli.StudyCommand.ParseUntil("09:00", now)).Message);
        Assert.Contains("expected HH:MM", Assert.ThrowsAny<Exception>(() => Diffusion.Cli.StudyCommand.ParseUntil("soon", now)).Message);
    }

    [Fact]
    public void Status_counts_done_running_and_left_jobs()
    {
        var dir = TestUtil.TempDir("study-status");
        var plan = Plan(dir);
        var empty = StudyStatus.Of(plan, Out(dir));
        Assert.Equal(4, empty.Count("left"));
        Assert.Null(empty.SecondsLeft);
        Assert.Contains("no estimate yet", empty.ToText());

        new StudyRunner(plan, Out(dir)).RunAll();
        Assert.Equal(4, StudyStatus.Of(plan, Out(dir)).Count("done"));
        var folder = new StudyFolder(Out(dir));
        var jobs = plan.Jobs();
        // One job left (its result gone), one running (a live claim by this process, at training step 12).
        File.Delete(folder.Result(jobs[1]));
        File.Delete(folder.Result(jobs[2]));
        File.Delete(folder.TrainInfo(jobs[2]));
        RunLock.Write(folder.Lock(jobs[2]), new RunLock.Holder(Environment.ProcessId, Environment.MachineName, DateTime.UtcNow));
        StudyFolder.Write(folder.Progress(jobs[2]), new JsonObject { ["phase"] = "training", ["step"] = 12, ["total"] = 30 });
        var s = StudyStatus.Of(plan, Out(dir));
        Assert.Equal(2, s.Count("done"));
        Assert.Equal(1, s.Count("running"));
        Assert.Equal(1, s.Count("left"));
        Assert.Contains("training step 12/30", s.Jobs.Single(j => j.State == "running").Detail);
        Assert.NotNull(s.SecondsLeft);
        Assert.True(s.SecondsLeft > 0);
        Assert.Contains("2 done, 1 running, 1 left of 4 jobs", s.ToText());
    }

    [Fact]
    public void The_first_evaluation_records_the_features_and_the_real_versus_real_floor_and_other_features_are_refused()
    {
        var dir = TestUtil.TempDir("study-floor");
        var plan = Plan(dir, TinyPlan.Replace("mmd-n = 96", "mmd-n = 96\nfloor = \"toy:gmm-grid?seed=5\""));
        new StudyRunner(plan, Out(dir)).RunAll();
        var feat = JsonNode.Parse(File.ReadAllText(StudyEvaluator.FeaturesFile(Out(dir))))!;
        Assert.Equal("raw", (string?)feat["identity"]);
        var floor = feat["floor"]!;
        Assert.Equal("toy:gmm-grid?seed=5", (string?)floor["source"]);
        Assert.Equal(96, (long)floor["n"]!);

        // The floor's FID in closed form (2-D raw features: Tr((S1 S2)^½) = √(tr M + 2√det M) for M = S1 S2), from the
        // same 96 real examples and the plan's 400 reference examples, in float64.
        static (double[] Mu, double[,] S) Stats(float[] xy)
        {
            int n = xy.Length / 2;
            double mx = 0, my = 0;
            for (int i = 0; i < n; i++) { mx += xy[2 * i]; my += xy[2 * i + 1]; }
            mx /= n; my /= n;
            double sxx = 0, sxy = 0, syy = 0;
            for (int i = 0; i < n; i++)
            {
                double dx = xy[2 * i] - mx, dy = xy[2 * i + 1] - my;
                sxx += dx * dx; sxy += dx * dy; syy += dy * dy;
            }
            return ([mx, my], new[,] { { sxx / (n - 1), sxy / (n - 1) }, { sxy / (n - 1), syy / (n - 1) } });
        }
        float[] Rows(string spec, int n, long seed)
        {
            using var d = SampleSet.Subset(DataSources.Load(new DataConfig { Spec = spec }), n, seed);
            return d.Data.to_type(TorchSharp.torch.ScalarType.Float32).data<float>().ToArray();
        }
        var (m1, s1) = Stats(Rows("toy:gmm-grid?seed=5", 96, 1));
        var (m2, s2) = Stats(Rows("toy:gmm-grid", 400, 0));
        double a = s1[0, 0] * s2[0, 0] + s1[0, 1] * s2[1, 0], b = s1[0, 0] * s2[0, 1] + s1[0, 1] * s2[1, 1];
        double c = s1[1, 0] * s2[0, 0] + s1[1, 1] * s2[1, 0], d = s1[1, 0] * s2[0, 1] + s1[1, 1] * s2[1, 1];
        double trSqrt = Math.Sqrt(a + d + 2 * Math.Sqrt(a * d - b * c));
        double fid = Math.Pow(m1[0] - m2[0], 2) + Math.Pow(m1[1] - m2[1], 2) + s1[0, 0] + s1[1, 1] + s2[0, 0] + s2[1, 1] - 2 * trSqrt;
        Assert.Equal(fid, floor["metrics"]!["fid"]!.GetValue<double>(), 1e-4);
        // Real examples score better than the 30-step models.
        foreach (var result in Directory.GetFiles(Path.Combine(Out(dir), "results")))
            foreach (var e in JsonNode.Parse(File.ReadAllText(result))!["evaluations"]!.AsArray())
                Assert.True(fid < e!["metrics"]!["fid"]!.GetValue<double>());
        var report = StudyReport.Write(plan, Out(dir), Path.Combine(dir, "report.md"), "diffusion study --report");
        Assert.Contains("**Real-versus-real floor**", report);

        // A worker whose features differ from the recorded ones (another classifier) refuses to score.
        File.WriteAllText(StudyEvaluator.FeaturesFile(Out(dir)), feat.ToJsonString().Replace("\"identity\":\"raw\"", "\"identity\":\"classifier:x sha256:00\""));
        var ex = Assert.Throws<UserError>(() => new StudyEvaluator(plan, Out(dir), plan.ConfigFor(plan.Jobs()[0]), null));
        Assert.Contains("features.json", ex.Message);
        Assert.Contains("classifier:x sha256:00", ex.Message);
    }

    [Fact]
    public void Report_tabulates_mean_and_standard_deviation_over_seeds()
    {
        var dir = TestUtil.TempDir("study-report");
        var plan = Plan(dir);
        new StudyRunner(plan, Out(dir)).RunAll();
        string report = Path.Combine(dir, "report.md");
        var text = StudyReport.Write(plan, Out(dir), report, "diffusion study plan.toml --out out --report");
        Assert.True(File.Exists(Path.Combine(dir, "report-fid-ddim-5.png")));
        Assert.Contains("diffusion study plan.toml --out out --report", text);

        // The cells, computed here from the result files.
        string Cell(string variant, string label, string key)
        {
            var v = new[] { 0, 1 }.Select(seed =>
                JsonNode.Parse(File.ReadAllText(Path.Combine(Out(dir), "results", $"{variant}-seed{seed}.json")))!["evaluations"]!.AsArray()
                    .Single(e => (long)e!["step"]! == 30 && (string?)e["label"] == label)!["metrics"]![key]!.GetValue<double>()).ToArray();
            double mean = (v[0] + v[1]) / 2, sd = Math.Abs(v[0] - v[1]) / Math.Sqrt(2);
            return $"{StudyReport.Number(mean)} ± {StudyReport.Number(sd)}";
        }
        foreach (var variant in new[] { "baseline", "debiased" })
        {
            Assert.Contains($"| {variant} | 2 | {Cell(variant, "ddim-5", "fid")} | {Cell(variant, "ddpm-10", "fid")} |", text);
            Assert.Contains($"| {variant} | 2 | {Cell(variant, "ddim-5", "mmd2")} | {Cell(variant, "ddpm-10", "mmd2")} |", text);
        }
        Assert.Contains("| debiased | ddim-5 |", text);
        Assert.Contains($"| baseline | 1.01 | {Cell("baseline", "ddim-5 b=1.01", "fid")} |", text);
        // The claims: each row's cells and verdict from the result files.
        List<double> Of(string variant, long step, string label, string key) => new[] { 0, 1 }.Select(seed =>
            JsonNode.Parse(File.ReadAllText(Path.Combine(Out(dir), "results", $"{variant}-seed{seed}.json")))!["evaluations"]!.AsArray()
                .Single(e => (long)e!["step"]! == step && (string?)e["label"] == label)!["metrics"]![key]!.GetValue<double>()).ToList();
        var claims = new[]
        {
            ("debiased lowers FID by half", Of("debiased", 30, "ddim-5", "fid"), Of("baseline", 30, "ddim-5", "fid"), (double?)-0.5),
            ("b = 1.01 is no worse", Of("baseline", 30, "ddim-5 b=1.01", "fid"), Of("baseline", 30, "ddim-5", "fid"), 0),
            ("debiased at 15 beats the baseline at 30", Of("debiased", 15, "ddim-5", "mmd2"), Of("baseline", 15, "ddim-5", "mmd2"), null),
        };
        foreach (var (claim, a, b, effect) in claims)
        {
            string line = text.Split('\n').Single(l => l.StartsWith($"| {claim} |", StringComparison.Ordinal));
            string change = (a.Average() / b.Average() - 1) is var rel && rel >= 0 ? string.Create(CultureInfo.InvariantCulture, $"+{100 * rel:F1} %") : string.Create(CultureInfo.InvariantCulture, $"−{-100 * rel:F1} %");
            Assert.EndsWith($"| {change} | {(effect is null ? "direction only" : effect == 0 ? "no worse" : "−50.0 %")} | " +
                            $"{StudyReport.Number(2 * Math.Max(StudyReport.MeanSd(a).Sd, StudyReport.MeanSd(b).Sd))} | {StudyReport.ClaimVerdict(a, b, true, effect)} |", line);
        }

        // A sampling-only claim (two rows of one variant) is compared on the seeds that have both rows, and a sweep's
        // "plan's sampler" row is on the sweep's seeds: drop the sweep's rows from seed 1 and seed 0 alone remains.
        string only0 = StudyReport.Number(Of("baseline", 30, "ddim-5", "fid")[0]), sweep0 = StudyReport.Number(Of("baseline", 30, "ddim-5 b=1.01", "fid")[0]);
        string seed1 = Path.Combine(Out(dir), "results", "baseline-seed1.json");
        var doc = JsonNode.Parse(File.ReadAllText(seed1))!;
        var evals = doc["evaluations"]!.AsArray();
        foreach (var e in evals.Where(e => ((string?)e!["label"])!.Contains("b=1.01", StringComparison.Ordinal)).ToList()) evals.Remove(e);
        File.WriteAllText(seed1, doc.ToJsonString());
        text = StudyReport.Write(plan, Out(dir), report, "diffusion study plan.toml --out out --report");
        string sampling = text.Split('\n').Single(l => l.StartsWith("| b = 1.01 is no worse |", StringComparison.Ordinal));
        Assert.Contains($"| baseline ddim-5 b=1.01 @ 30: fid {sweep0} (seed 0) | baseline ddim-5 @ 30: fid {only0} (seed 0) |", sampling);
        Assert.EndsWith("| inconclusive: one seed |", sampling);
        // The other claims keep both seeds of both variants.
        Assert.Contains($"| debiased lowers FID by half | debiased ddim-5 @ 30: fid {Cell("debiased", "ddim-5", "fid")} | baseline ddim-5 @ 30: fid {Cell("baseline", "ddim-5", "fid")} |", text);
        Assert.Contains($"| baseline | 1.01 | {sweep0} |", text);
        Assert.Contains($"| baseline | (plan's sampler) | {Cell("baseline", "ddim-5", "fid")} |", text);   // the sweep names no seeds: all of them
        var onSeed0 = Plan(Path.Combine(dir, "seed0"), TinyPlan.Replace("samplers = [\"ddim-5\"]\npoints", "samplers = [\"ddim-5\"]\nseeds = [0]\npoints", StringComparison.Ordinal));
        Assert.Equal([0L], onSeed0.Sweeps.Single().Seeds);
        text = StudyReport.Write(onSeed0, Out(dir), Path.Combine(dir, "seed0", "report.md"), "diffusion study --report");
        Assert.Contains($"| baseline | (plan's sampler) | {only0} |", text);

        Assert.Equal("35.50", StudyReport.Number(35.5));
        Assert.Equal("0.1235", StudyReport.Number(0.12346));
        Assert.Equal("12346", StudyReport.Number(12345.6));
    }

    [Fact]
    public void Verdict_needs_a_difference_beyond_twice_the_seed_spread()
    {
        Assert.Equal("better", StudyReport.Verdict([1.0, 1.2], [2.0, 2.2], lowerIsBetter: true));
        Assert.Equal("worse", StudyReport.Verdict([1.0, 1.2], [2.0, 2.2], lowerIsBetter: false));
        Assert.Equal("no difference", StudyReport.Verdict([1.0, 2.0], [1.5, 1.6], lowerIsBetter: true));
        Assert.Equal("one seed: no spread", StudyReport.Verdict([1.0], [2.0, 2.2], lowerIsBetter: true));
    }

    [Fact]
    public void A_claim_is_confirmed_refuted_or_inconclusive_by_the_stated_rule()
    {
        // FID-like (lower is better): means 10 and 20, sd 1 on both sides, so 2 × spread = 2.
        double[] ten = [9.0, 11.0], twenty = [19.0, 21.0], twentyOne = [20.0, 22.0];
        double s2 = Math.Sqrt(2);
        double[] wide = [10 - 5 * s2, 10 + 5 * s2];   // mean 10, sd 10: 2 × spread = 20
        Assert.Equal("confirmed", StudyReport.ClaimVerdict(ten, twenty, true, -0.3));
        Assert.Equal("confirmed", StudyReport.ClaimVerdict(ten, twenty, true, null));
        Assert.Equal("not confirmed: the opposite", StudyReport.ClaimVerdict(twenty, ten, true, -0.3));
        // |d| = 1 ≤ 2: the paper's −30 % of 21 (6.3) would exceed 2 and is not seen; a −5 % (1.05) would not be visible.
        Assert.Equal("not confirmed: no difference where the paper's would show", StudyReport.ClaimVerdict(twenty, twentyOne, true, -0.3));
        Assert.Equal("inconclusive at this scale", StudyReport.ClaimVerdict(twenty, twentyOne, true, -0.05));
        Assert.Equal("inconclusive at this scale", StudyReport.ClaimVerdict(twenty, twentyOne, true, null));
        Assert.Equal("inconclusive at this scale", StudyReport.ClaimVerdict(wide, [12.0, 14.0], true, -0.3));
        // "No worse": refuted only by a worsening beyond twice the spread; higher-is-better flips the direction.
        Assert.Equal("confirmed: no worse", StudyReport.ClaimVerdict(twentyOne, twenty, true, 0));
        Assert.Equal("not confirmed: worse", StudyReport.ClaimVerdict(twenty, ten, true, 0));
        Assert.Equal("confirmed", StudyReport.ClaimVerdict(twenty, ten, false, 0.3));
        Assert.Equal("inconclusive: one seed", StudyReport.ClaimVerdict([10.0], twenty, true, -0.3));
        Assert.Equal("not measured yet", StudyReport.ClaimVerdict([], twenty, true, -0.3));
    }

    [Theory]
    [InlineData("[[claims]]\nclaim = \"x\"\nvariant = \"debiased\"\nrow = \"ddpm-10\"\nstep = 15\n", "[[claims]]", "claims[0].row: variant 'debiased' has no row 'ddpm-10' at step 15")]
    [InlineData("[[claims]]\nclaim = \"x\"\nvariant = \"debiased\"\nrow = \"ddim-5\"\neffect = 0.2\n", "[[claims]]", "claims[0].effect: 0.2 would make fid worse (lower is better)")]
    [InlineData("[[claims]]\nclaim = \"x\"\nvariant = \"debiased\"\nrow = \"ddim-5\"\nagainst = \"nobody\"\n", "[[claims]]", "claims[0].against: no variant named 'nobody'")]
    [InlineData("stepz = 3\n", "", "unknown plan key 'stepz'")]
    [InlineData("[[variants]]\nname = \"bad\"\nset = [\"model.hiden=3\"]\n", "[[samplers]]", "variant 'bad': toy: unknown key 'model.hiden'")]
    [InlineData("[[samplers]]\nlabel = \"x\"\nsampler = \"ddimm\"\n", "[[sweeps]]", "samplers[2].sampler: unknown sampler 'ddimm'")]
    [InlineData("[[samplers]]\nlabel = \"x\"\nsampler = \"ddim\"\noptions = { rho = 7 }\n", "[[sweeps]]", "sampler 'x' on variant 'baseline'")]
    [InlineData("", "", "eval-steps: step 40 exceeds the training budget steps = 30")]
    [InlineData("[[sweeps]]\nname = \"s\"\nvariant = \"debiased\"\nseeds = [3]\npoints = [ { label = \"2\", options = { steps = 2 } } ]\n", "[evaluation]", "sweeps[1].seeds: seed 3 is not a seed of debiased")]
    [InlineData("[[diagnostics]]\nname = \"mixture-steps\"\nvariants = [\"debiased\"]\n", "[evaluation]", "diagnostics[0].name: expected one of exposure-bias, x0-bias, lipschitz, error-propagation, got 'mixture-steps'")]
    [InlineData("[[diagnostics]]\nname = \"x0-bias\"\nvariants = [\"debiased\"]\nbandwidth = \"nearest\"\n", "[evaluation]", "diagnostics[0].bandwidth: applies to error-propagation only")]
    [InlineData("[[diagnostics]]\nname = \"lipschitz\"\nvariants = [\"debiased\"]\nseed = 2\n", "[evaluation]", "diagnostics[0].seed: 2 is not a seed of variant 'debiased'")]
    [InlineData("[[diagnostics]]\nname = \"lipschitz\"\nvariants = [\"nobody\"]\n", "[evaluation]", "diagnostics[0].variants: no variant named 'nobody'")]
    [InlineData("[report]\nsamples = \"nope\"\n", "[[claims]]", "report.samples: no sampler labelled 'nope'; expected one of ddim-5, ddpm-10")]
    [InlineData("[report]\nsamples = \"ddim-5\"\nsamples-n = 500\n", "[[claims]]", "report.samples-n: 500 is more than the evaluation's n = 96")]
    public void A_bad_plan_is_one_line_naming_the_input(string extra, string before, string expected)
    {
        var dir = TestUtil.TempDir("study-bad");
        // Extra tables go before the table named by `before` (an array of tables continues there), top-level keys first.
        int at = before.Length > 0 ? TinyPlan.IndexOf(before, StringComparison.Ordinal) : 0;
        string text = TinyPlan[..at] + extra + "\n" + TinyPlan[at..];
        if (expected.StartsWith("eval-steps", StringComparison.Ordinal)) text = text.Replace("eval-steps = [15, 30]", "eval-steps = [15, 40]");
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, "plan.toml");
        File.WriteAllText(path, text);
        var e = Assert.ThrowsAny<UserError>(() => { var p = StudyPlan.Load(path); p.Validate(); });
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.StartsWith(path, e.Message);
    }

    [Fact]
    public void An_evaluation_step_beyond_the_budget_is_refused_by_the_command_before_training()
    {
        var dir = TestUtil.TempDir("study-cli");
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, "plan.toml");
        File.WriteAllText(path, TinyPlan.Replace("eval-steps = [15, 30]", "eval-steps = [15, 40]"));
        var r = CliTests.Run("study", path, "--out", Out(dir));
        CliTests.AssertOneLineError(r, "eval-steps: step 40 exceeds the training budget steps = 30");
        Assert.False(Directory.Exists(Path.Combine(Out(dir), "work")));
    }

    [Fact]
    public void Fill_without_until_is_refused_by_the_command()
    {
        var dir = TestUtil.TempDir("study-fill");
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, "plan.toml");
        File.WriteAllText(path, TinyPlan);
        CliTests.AssertOneLineError(CliTests.Run("study", path, "--out", Out(dir), "--fill"), "--fill needs --until TIME");
        Assert.False(Directory.Exists(Path.Combine(Out(dir), "work")));
    }

    [Fact]
    public void Job_runs_only_the_named_jobs_and_one_job_rerun_alone_in_a_fresh_folder_reproduces_the_whole_plans_numbers()
    {
        var dir = TestUtil.TempDir("study-job");
        var plan = Plan(dir);
        string path = Path.Combine(dir, "plan.toml"), whole = Path.Combine(dir, "whole"), alone = Path.Combine(dir, "alone");
        new StudyRunner(plan, whole).RunAll();   // debiased-seed1 is the last of four jobs here

        var r = CliTests.Run("study", path, "--out", alone, "--threads", "1", "--job", "debiased-seed1");
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal(["debiased-seed1.json"], Directory.GetFiles(Path.Combine(alone, "results")).Select(Path.GetFileName));
        Assert.Equal(["debiased-seed1"], Directory.GetDirectories(Path.Combine(alone, "work")).Select(Path.GetFileName));
        Assert.Contains("1 done, 0 running, 3 left of 4 jobs", CliTests.Run("study", path, "--out", alone, "--status").Out);
        // Trained and evaluated with nothing run before it in the process or the folder: the same numbers to the last bit.
        Assert.Equal(Metrics(whole, "debiased-seed1"), Metrics(alone, "debiased-seed1"));

        // Names separated by commas, or the option repeated; a finished one is said to be so and not redone.
        var two = CliTests.Run("study", path, "--out", alone, "--threads", "1", "--job", "debiased-seed1,baseline-seed0", "--job", "baseline-seed0");
        Assert.True(two.Code == 0, two.Err);
        Assert.Contains("debiased-seed1 is finished here", two.Err);
        Assert.Contains("this worker finished 1 job(s); 2 done, 0 running, 2 left", two.Err);
        Assert.Equal(Metrics(whole, "baseline-seed0"), Metrics(alone, "baseline-seed0"));

        CliTests.AssertOneLineError(CliTests.Run("study", path, "--out", alone, "--job", "baseline-seed7"),
            "--job baseline-seed7: no such job in plan 'tiny'; expected one of baseline-seed0, ");
        CliTests.AssertOneLineError(CliTests.Run("study", path, "--out", alone, "--job", ","), "--job: expected one or more job names");
        CliTests.AssertOneLineError(CliTests.Run("study", path, "--out", alone, "--status", "--job", "baseline-seed1"), "--job selects the jobs a worker runs");
        Assert.False(Directory.Exists(Path.Combine(alone, "work", "baseline-seed1")));
    }

    // The tiny plan with, instead of its sweep and claims, a sweep over steps on both variants, seed 1 only, at its own n,
    // and a diagnostic on seed 1.
    private static readonly string DiagnosticPlan = TinyPlan[..TinyPlan.IndexOf("[[sweeps]]", StringComparison.Ordinal)] + """
        [[sweeps]]
        name = "steps"
        variant = ["baseline", "debiased"]
        seeds = [1]
        n = 48
        final-only = true
        samplers = ["ddpm-10"]
        points = [ { label = "20", options = { steps = 20 } }, { label = "5", options = { steps = 5 } } ]

        [[diagnostics]]
        name = "x0-bias"
        variants = ["debiased"]
        seed = 1
        n = 64
        grid-points = 6

        """ + TinyPlan[TinyPlan.IndexOf("[evaluation]", StringComparison.Ordinal)..TinyPlan.IndexOf("[[claims]]", StringComparison.Ordinal)];

    [Fact]
    public void A_sweep_runs_on_its_variants_and_seeds_with_its_own_n()
    {
        var plan = Plan(TestUtil.TempDir("study-sweep"), DiagnosticPlan);
        string Rows(string variant, long seed) => string.Join(", ", plan.Tasks(plan.Jobs().Single(j => j.Variant.Name == variant && j.Seed == seed)).Select(t => $"{t.Step} {t.Label} n={t.N}"));
        Assert.Equal("15 ddim-5 n=, 30 ddim-5 n=, 30 ddpm-10 n=", Rows("baseline", 0));
        Assert.Equal("15 ddim-5 n=, 30 ddim-5 n=, 30 ddpm-10 n=, 30 ddpm-10 steps=20 n=48, 30 ddpm-10 steps=5 n=48", Rows("debiased", 1));
        var tasks = plan.Tasks(plan.Jobs().Single(j => j.Id == "baseline-seed1"));
        // The point's steps replace the sampler's; its own n is part of the evaluation's identity, the plan's n is not changed.
        var point = tasks.Single(t => t.Label == "ddpm-10 steps=5");
        Assert.Equal("5", point.Assignments.Last(a => a.Key == "steps").Value);
        Assert.Contains("\"N\":48", plan.Identity(point));
        Assert.Contains("\"N\":96", plan.Identity(tasks[0]));
        // The diagnostic runs in seed 1's jobs of its variants and of the baseline only.
        Assert.Equal(["baseline-seed1", "debiased-seed1"], plan.Jobs().Where(j => plan.DiagnosticsFor(j).Count > 0).Select(j => j.Id));
    }

    [Fact]
    public void A_diagnostic_is_kept_in_the_result_and_the_report_draws_exactly_what_diagnose_draws()
    {
        var dir = TestUtil.TempDir("study-diag");
        var plan = Plan(dir, DiagnosticPlan.Replace("seeds = [0, 1]", "seeds = [1]").Replace("[[variants]]\nname = \"debiased\"\nremedy = [\"debiased\"]\n", "")
                                           .Replace("variant = [\"baseline\", \"debiased\"]", "variant = \"baseline\"").Replace("variants = [\"debiased\"]", "variants = [\"baseline\"]"));
        var runner = new StudyRunner(plan, Out(dir));
        Assert.Equal(1, runner.RunAll());
        var r = JsonNode.Parse(File.ReadAllText(Path.Combine(Out(dir), "results", "baseline-seed1.json")))!;
        var sweep = r["evaluations"]!.AsArray().Where(e => (string?)e!["sweep"] == "steps").ToList();
        Assert.Equal([20, 5], sweep.Select(e => (int)e!["nfe"]!));
        Assert.All(sweep, e => Assert.Equal(48, (int)e!["n"]!));
        var run = r["diagnostics"]!["x0-bias"]!.AsObject();
        Assert.Equal("baseline", (string?)run["label"]);

        // The report's x0-bias.json, from the result file, equals diagnose's own output for the same checkpoint and settings.
        string report = Path.Combine(dir, "report", "report.md");
        string text = StudyReport.Write(plan, Out(dir), report, "test");
        Assert.Contains("## Diagnostic `x0-bias`", text);
        Assert.Contains("report-diagnostics/x0-bias/x0-bias.png", text);
        Assert.Contains("## Sweep `steps` on `baseline` (fid at step 30, n = 48, seeds 1)", text);
        Assert.True(File.Exists(Path.Combine(dir, "report", "report-sweep-steps.png")));
        var job = plan.Jobs().Single();
        var d = plan.Diagnostics.Single();
        using (var m = Diffusion.Diagnostics.DiagnosticModel.FromCheckpoint(new StudyFolder(Out(dir)).Checkpoint(job, plan.Steps), "baseline"))
            Diffusion.Diagnostics.X0Bias.Write(Path.Combine(dir, "direct"), [Diffusion.Diagnostics.X0Bias.Run(m, d.Settings)], d.Settings);
        Assert.Equal(File.ReadAllText(Path.Combine(dir, "direct", "x0-bias.json")), File.ReadAllText(Path.Combine(dir, "report", "report-diagnostics", "x0-bias", "x0-bias.json")));
        Assert.Equal(File.ReadAllText(Path.Combine(dir, "direct", "x0-bias.csv")), File.ReadAllText(Path.Combine(dir, "report", "report-diagnostics", "x0-bias", "x0-bias.csv")));

        // A rerun finds the job finished: nothing is redone.
        Assert.Equal(0, new StudyRunner(plan, Out(dir)).RunAll());
    }

    [Fact]
    public void Every_diagnostic_result_survives_the_result_file()
    {
        // Made-up per-model results (a NaN among them, as a Lipschitz K or an MMD² can be): written by diagnose's own
        // writer from the records, and from the records read back out of their JSON as the report does — the same files.
        var e = new Estimate(0.25, 0.01);
        var results = new Dictionary<string, object[]>
        {
            ["exposure-bias"] = [new ExposureBias.Result("a", "held", [new ExposureBias.GapRow(3, e, new Estimate(0.2, 0.02))], [new ExposureBias.ReconstructionRow(10, "ddpm", 2, e)]),
                                 new ExposureBias.Result("b", "held", [new ExposureBias.GapRow(3, new Estimate(double.NaN, 0), e)], [new ExposureBias.ReconstructionRow(10, "ddim", 2, e)])],
            ["x0-bias"] = [new X0Bias.Result("a", "held", [new X0Bias.Row(0, e, 0.1, 0.01, e), new X0Bias.Row(9, e, 0.2, 0.02, e)])],
            ["lipschitz"] = [new LipschitzProbe.Result("a", "held", 1.0, [new LipschitzProbe.Row(1, new Estimate(double.PositiveInfinity, 0)), new LipschitzProbe.Row(5, e)])],
            ["error-propagation"] = [new ErrorPropagation.Result("a", "held", [new ErrorPropagation.Row(4, 0.3, 0.1, 0.01, 2.5)], MmdBandwidth.Nearest),
                                     new ErrorPropagation.Result("b", "held", [new ErrorPropagation.Row(4, -0.01, 0.1, 0.6, 2.5)], MmdBandwidth.Nearest)],
        };
        var dir = TestUtil.TempDir("study-diag-json");
        foreach (var (name, records) in results)
        {
            var d = new StudyDiagnostic(name, ["b"], 0, N: 8, Steps: 4, GridPoints: 3);
            var s = d.Settings;
            string direct = Path.Combine(dir, name, "direct"), back = Path.Combine(dir, name, "back");
            switch (name)
            {
                case "exposure-bias": ExposureBias.Write(direct, records.Cast<ExposureBias.Result>().ToList(), s); break;
                case "x0-bias": X0Bias.Write(direct, records.Cast<X0Bias.Result>().ToList(), s); break;
                case "lipschitz": LipschitzProbe.Write(direct, records.Cast<LipschitzProbe.Result>().ToList(), s); break;
                default: ErrorPropagation.Write(direct, records.Cast<ErrorPropagation.Result>().ToList(), s, d.Permutations); break;
            }
            var runs = records.Select(r => new JsonObject
            {
                ["result"] = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(r, r.GetType(), StudyDiagnostics.Json)),
            }).ToList();
            StudyDiagnostics.Write(d, runs, back);
            foreach (var ext in new[] { ".json", ".csv" })
                Assert.Equal(File.ReadAllText(Path.Combine(direct, name + ext)), File.ReadAllText(Path.Combine(back, name + ext)));
            Assert.All(runs, r => Assert.False(string.IsNullOrEmpty(StudyDiagnostics.Summary(d, r))));
        }
    }

    [Fact]
    public void Kept_samples_are_the_first_samples_of_their_row_and_the_report_draws_them()
    {
        var dir = TestUtil.TempDir("study-kept");
        int at = TinyPlan.IndexOf("[[claims]]", StringComparison.Ordinal);
        var plan = Plan(dir, TinyPlan[..at].Replace("seeds = [0, 1]", "seeds = [0]") + "[report]\nsamples = \"ddim-5\"\nsamples-n = 10\n\n" + TinyPlan[at..]);
        Assert.Equal(2, new StudyRunner(plan, Out(dir)).RunAll());
        var r = JsonNode.Parse(File.ReadAllText(Path.Combine(Out(dir), "results", "baseline-seed0.json")))!;
        Assert.Equal("ddim-5 at step 30, the first 10", (string?)r["samples_kept"]);
        // The machine that finished it, as /proc/cpuinfo and libtorch describe it.
        Assert.Equal(Environment.ProcessorCount, (int)r["machine"]!["logical_cpus"]!);
        Assert.Equal(TorchSharp.torch.__version__, (string?)r["machine"]!["libtorch"]);
        if (File.Exists("/proc/cpuinfo"))
            Assert.Equal(File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("cpu family", StringComparison.Ordinal)).Split(':')[1].Trim(), (string?)r["machine"]!["cpu_family"]);
        var evals = r["evaluations"]!.AsArray().OfType<JsonObject>().ToList();
        // Only the plain ddim-5 row at the final checkpoint keeps samples (not step 15, not the sweep point, not ddpm-10).
        Assert.Equal(["30 ddim-5"], evals.Where(e => e["samples"] is not null).Select(e => $"{e["step"]} {e["label"]}"));
        var kept = evals.Single(e => e["samples"] is not null)["samples"]!.AsObject();
        Assert.Equal("float32", (string?)kept["dtype"]);
        Assert.Equal([2L], kept["shape"]!.AsArray().Select(d => (long)d!));

        // They are the first 10 of the evaluation's 96 samples: drawn again here from the checkpoint through the sampling API.
        var job = plan.Jobs().Single(j => j.Id == "baseline-seed0");
        var task = plan.Tasks(job).Single(t => t.Step == 30 && t.Label == "ddim-5");
        using var model = TrainedModel.Load(new StudyFolder(Out(dir)).Checkpoint(job, 30));
        var sc = Diffusion.Sampling.SampleRun.Resolve(model.Config.Sample, task.Assignments, model.Schedule.T);
        var sampler = Diffusion.Sampling.Samplers.Create(sc, model.Schedule, clipDefault: model.IsImage);
        using var noise = Diffusion.Sampling.NoiseSource.PerSample(plan.Evaluation.Seed);
        using var denoiser = model.CreateDenoiser(noise, sc);
        using var again = Diffusion.Sampling.SampleRun.DrawIndexed(sampler, denoiser, noise, Enumerable.Range(0, 96).Select(i => (long)i).ToArray(),
                                                                  model.ExampleShape, TorchSharp.torch.ScalarType.Float32, plan.Evaluation.BatchSize);
        using var decoded = KeptSamples.Decode(kept);
        Assert.Equal(again.narrow(0, 0, 10).data<float>().ToArray(), decoded.data<float>().ToArray());

        string text = StudyReport.Write(plan, Out(dir), Path.Combine(dir, "report.md"), "test");
        Assert.Contains("## Samples: ddim-5 at step 30", text);
        Assert.Contains($"* **Machines** that finished the jobs (results per CPU; bfloat16 training differs between CPU kinds): {Diffusion.Util.MachineInfo.Short(r["machine"]!.AsObject())}: 2.", text);
        Assert.Contains("| baseline (seed 0) | debiased (seed 0) |", text);
        Assert.Contains("![baseline](report-samples/baseline.png)", text);
        Assert.True(new FileInfo(Path.Combine(dir, "report-samples", "debiased.png")).Length > 1000);
    }

    [Fact]
    public void Kept_images_are_the_bytes_of_their_png_grid()
    {
        using var g = new TorchSharp.torch.Generator(7);
        using var images = TorchSharp.torch.randn([5, 1, 4, 3], generator: g);   // some beyond [−1, 1]
        var kept = KeptSamples.Encode(images, 3);
        Assert.Equal("uint8", (string?)kept["dtype"]);
        Assert.Equal(3L, (long)kept["n"]!);
        Assert.Equal(36, Convert.FromBase64String((string)kept["data"]!).Length);
        using var back = KeptSamples.Decode(kept);
        Assert.Equal([3L, 1, 4, 3], back.shape);
        var x = images.narrow(0, 0, 3).contiguous().data<float>().ToArray();
        var y = back.data<float>().ToArray();
        for (int i = 0; i < x.Length; i++)
        {
            // The grid's mapping: clamp to [−1, 1], then round((x + 1)·127.5); decoded, re-encoded: the same byte.
            double expected = Math.Round((Math.Clamp(x[i], -1f, 1f) + 1) * 127.5, MidpointRounding.ToEven);
            Assert.Equal(expected, Math.Round((y[i] + 1) * 127.5, 3));
        }
        Assert.Equal((string)kept["data"]!, (string)KeptSamples.Encode(back, 3)["data"]!);
    }

    [Theory]
    [InlineData("study-fashion.toml")]
    [InlineData("study-grid.toml")]
    public void The_experiment_plans_validate_every_variant(string file)
    {
        var plan = StudyPlan.Load(Path.Combine(PackagingTests.RepoRoot(), "experiments", file));
        plan.Validate();
        Assert.Contains(plan.Variants, v => v.Name == plan.Baseline);
        Assert.All(plan.Variants, v => Assert.True(v.Seeds.Count >= 1));
        Assert.True(plan.Variant(plan.Baseline).Seeds.Count >= 3);
        Assert.Equal(3, plan.EvalSteps.Count);
        Assert.NotEmpty(plan.Sweeps);
    }
}
