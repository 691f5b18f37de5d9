using Diffusion.Study;
using TorchSharp;

namespace Diffusion.Cli;

/// <summary><c>diffusion study</c>: run a study plan as one worker, show its status, or write its report (<see cref="Diffusion.Study"/>).</summary>
public static class StudyCommand
{
    /// <summary>The options, in the order the help lists them.</summary>
    internal static readonly IReadOnlyList<OptionSpec> Options =
    [
        OptionSpec.Value("out", "DIR", "the study folder (results/, work/, reference.npz)"),
        OptionSpec.Value("threads", "N", "libtorch CPU threads of this worker (one per worker when two run)"),
        OptionSpec.Switch("status", """
            each job done / running (with its progress) / left, and the time left estimated from
            the measured training and evaluation rates
            """),
        OptionSpec.Switch("report", "a Markdown report from DIR/results only (default DIR/report.md; plots beside it)"),
        OptionSpec.Value("report-out", "FILE", "where --report writes"),
        OptionSpec.Value("until", "TIME", """
            claim only jobs whose estimated time left ends before TIME (HH:MM UTC today, or an ISO 8601
            date-time), then stop: for a machine that is taken away at a known time; follow it with
            another plan's worker to fill the rest. A job still running at TIME stops there (its training
            writes a checkpoint at the step reached; an evaluation in progress is dropped) and resumes
            from there in a later run on DIR
            """),
        OptionSpec.Switch("fill", """
            with --until: once no job left fits before TIME, take the others too and stop them at TIME,
            instead of leaving the worker idle (their work counts if DIR is still there for a later run)
            """),
        OptionSpec.Value("job", "ID[,ID…]", """
            run only these jobs (named as --status lists them, e.g. baseline-seed1; repeatable): to re-run
            a finished job in a fresh DIR and check that it reproduces, or to give one heavy job a worker
            of its own (--threads 2) while no other runs
            """),
        OptionSpec.Switch("quiet", "no log lines"),
    ];

    public static HelpPage Help => new("""
        diffusion study PLAN.toml --out DIR [--threads N] [--until TIME [--fill]] [--job ID,…] [--quiet]
        diffusion study PLAN.toml --out DIR --status
        diffusion study PLAN.toml --out DIR --report [--report-out FILE.md]
        """, """
        Does remedy X help on my data at equal budget? A plan (TOML) names a base config (as train --config) and common
        --set assignments, the training budget and the steps whose checkpoints are evaluated, variants (each a name,
        remedies and --set assignments, optionally its own seeds), the seeds, samplers (label, sampler, steps, options as
        diffusion sample takes them, optionally final-only), sampling-only sweeps (extra sample options, steps included, on
        some variants' checkpoints, optionally on some seeds and at their own n), diagnostics (diffusion diagnose's
        exposure-bias, x0-bias, lipschitz, error-propagation on one seed's final checkpoints, kept in the results and drawn
        by --report over the baseline's) and the evaluation (n, sample seed, reference, features, metrics).
        experiments/study-*.toml are examples.

        A job is one variant with one seed: it trains (keeping a checkpoint copy at each evaluation step), evaluates each
        checkpoint × sampler, and writes DIR/results/<variant>-seed<k>.json. The whole plan is checked before anything is
        trained. Workers claim jobs with DIR/work/<job>/job.lock, so several may run the same plan at once; a killed
        worker's job resumes from its training checkpoint and its cached evaluations; a finished job is never redone. A job
        that fails (e.g. its training diverges) is recorded in work/<job>/failed.json and skipped until that is deleted.
        Samples are scored in memory, then dropped — but for the first few of the plan's [report] samples row at the
        final checkpoint, which the result keeps for --report to draw.

        Two workers on a two-core machine:
          OMP_WAIT_POLICY=PASSIVE nohup diffusion study PLAN.toml --out DIR --threads 1 > w1.log 2>&1 &
          OMP_WAIT_POLICY=PASSIVE nohup diffusion study PLAN.toml --out DIR --threads 1 > w2.log 2>&1 &

        Does a finished job reproduce? Re-run it alone in a fresh folder and compare the two result files' metrics:
          diffusion study PLAN.toml --out /tmp/check --job baseline-seed1 --threads 1
        """, Options);

    public static int Run(string[] argv)
    {
        var a = new Args("study", argv, Options);
        if (a.Positionals.Count != 1) throw new UsageError("diffusion study: give one plan file: diffusion study PLAN.toml --out DIR");
        string outDir = a.Require("out", "DIR");
        if (a.Switch("status") && a.Switch("report")) throw new UsageError("diffusion study: --status and --report are separate runs; give one");
        if (a.Has("report-out") && !a.Switch("report")) throw new UsageError("diffusion study: --report-out needs --report");
        if (a.Has("job") && (a.Switch("status") || a.Switch("report"))) throw new UsageError("diffusion study: --job selects the jobs a worker runs; --status and --report cover the whole plan");
        var plan = StudyPlan.Load(a.Positionals[0]);
        if (a.Switch("status"))
        {
            Console.Write(StudyStatus.Of(plan, outDir).ToText());
            return 0;
        }
        if (a.Switch("report"))
        {
            string report = a.Get("report-out") ?? Path.Combine(outDir, "report.md");
            string command = $"diffusion study {a.Positionals[0]} --out {outDir} --report" + (a.Has("report-out") ? $" --report-out {report}" : "");
            StudyReport.Write(plan, outDir, report, command);
            Console.Error.WriteLine($"study: report → {report}");
            return 0;
        }
        if (a.Switch("fill") && !a.Has("until")) throw new UsageError("diffusion study: --fill needs --until TIME (the time at which the jobs it takes stop)");
        List<string>? only = a.Has("job")
            ? a.All("job").SelectMany(v => v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)).ToList()
            : null;
        plan.Validate();
        if (a.Int("threads", 1) is int threads) torch.set_num_threads(threads);
        bool quiet = a.Switch("quiet");
        var runner = new StudyRunner(plan, outDir, quiet ? null : m => Console.Error.WriteLine(m)) { Until = a.Get("until") is string u ? ParseUntil(u) : null, Fill = a.Switch("fill"), Only = only };
        int done = runner.RunAll();
        var status = StudyStatus.Of(plan, outDir);
        Console.Error.WriteLine($"study: this worker finished {done} job(s); {status.Count("done")} done, {status.Count("running")} running, {status.Count("left")} left, {status.Count("failed")} failed of {status.Jobs.Count}");
        if (runner.Failed.Count > 0)
            throw new UserError($"study: {runner.Failed.Count} job(s) failed here ({runner.Failed[0].Job}: {runner.Failed[0].Error}); see --status, and delete {outDir}/work/<job>/failed.json to retry");
        if (runner.Stopped is { } stopped)
            Console.Error.WriteLine($"study: stopped at --until: {stopped.Job} ({stopped.Where}); a later run on {outDir} resumes it");
        // Only what is still left now: jobs this worker passed over may have been taken (or finished) by another meanwhile.
        var stillLeft = runner.Deferred.Keys.Where(id => status.Jobs.Any(j => j.Job.Id == id && j.State == "left")).ToList();
        if (stillLeft.Count > 0)
            Console.Error.WriteLine($"study: left for later (would not finish before --until): {string.Join(", ", stillLeft)}");
        return 0;
    }

    /// <summary>--until: HH:MM (UTC, today) or an ISO 8601 date-time; a time already past is an error.</summary>
    public static DateTime ParseUntil(string text, DateTime? nowUtc = null)
    {
        var now = nowUtc ?? DateTime.UtcNow;
        var c = System.Globalization.CultureInfo.InvariantCulture;
        DateTime at;
        if (TimeOnly.TryParseExact(text, ["HH:mm", "H:mm"], c, System.Globalization.DateTimeStyles.None, out var t))
            at = DateTime.SpecifyKind(now.Date + t.ToTimeSpan(), DateTimeKind.Utc);
        else if (DateTimeOffset.TryParse(text, c, System.Globalization.DateTimeStyles.AssumeUniversal, out var dto))
            at = dto.UtcDateTime;
        else throw new UsageError($"diffusion study: --until: expected HH:MM (UTC) or an ISO 8601 date-time, got '{text}'");
        if (at <= now) throw new UsageError($"diffusion study: --until {text} is already past ({now:HH:mm} UTC now)");
        return at;
    }
}
