using System.Diagnostics;
using System.Text;
using Diffusion.Config;
using Diffusion.Training;

namespace Diffusion.Tests;

/// <summary>Checksummed checkpoints, kept previous checkpoints, resuming from them, and the one-trainer-per-folder lock.</summary>
public class ReliabilityTests
{
    private static RunConfig Tiny(int steps, int checkpointEvery = 5, int keep = 1)
    {
        var cfg = ConfigLoader.FromTree(ConfigLoader.EmbeddedTree("toy"), "toy");
        cfg.Data.Spec = "toy:rings?n=1000";
        cfg.Model.Hidden = 32; cfg.Model.Blocks = 1; cfg.Model.Dropout = 0.1;
        cfg.Train.Steps = steps; cfg.Train.BatchSize = 16; cfg.Train.LogEvery = 1;
        cfg.Train.CheckpointEvery = checkpointEvery; cfg.Train.KeepCheckpoints = keep;
        cfg.Ema.Decay = 0.9;
        return cfg;
    }

    private static string Train(string name, RunConfig cfg)
    {
        var dir = TestUtil.TempDir(name);
        using var t = new Trainer(cfg, dir, resume: false);
        t.Run();
        return dir;
    }

    [Fact]
    public void A_damaged_ema_section_is_refused_on_load_and_resume_naming_the_section()
    {
        var dir = Train("damaged", Tiny(20));
        var path = Path.Combine(dir, Checkpoint.FileName);
        TestUtil.DamageSection(path, "ema");
        string expected = $"checkpoint {path}: section 'ema' is damaged (SHA-256 mismatch)";
        Assert.Equal(expected, Assert.Throws<CheckpointDamagedError>(() => TrainedModel.Load(dir)).Message);
        Assert.Equal(expected, Assert.Throws<CheckpointDamagedError>(() => TrainedModel.Load(dir, "model")).Message);
        var e = Assert.Throws<UserError>(() => new Trainer(Tiny(30), dir, resume: true));
        Assert.Equal($"--resume: {expected}; continue from the previous checkpoint with --resume-from prev (checkpoint.prev.ckpt)", e.Message);
        e = Assert.Throws<UserError>(() => TrainingRun.ResumeConfig(dir, 30, null));
        Assert.Contains("--resume-from prev", e.Message);
        Assert.False(File.Exists(Path.Combine(dir, RunLock.FileName)), "a refused trainer releases the lock");
        // The header is checked too.
        var prev = Path.Combine(dir, RunFolder.PrevCheckpointFile);
        var bytes = File.ReadAllBytes(prev);
        int at = bytes.AsSpan().IndexOf("\"step\":"u8);
        bytes[at + 7] ^= 0x01;   // a digit of the step
        File.WriteAllBytes(prev, bytes);
        Assert.Contains("section 'header' is damaged", Assert.Throws<CheckpointDamagedError>(() => TrainedModel.Load(prev)).Message);
    }

    [Fact]
    public void Resume_from_prev_continues_from_the_previous_checkpoint_and_ends_where_an_uninterrupted_run_does()
    {
        var dirA = Train("prev-a", Tiny(20));
        var dirB = Train("prev-b", Tiny(20));
        // Checkpoints at 5, 10, 15, 20: the latest holds step 20, the previous one step 15.
        Assert.Equal(15, Checkpoint.ReadHeader(Path.Combine(dirB, RunFolder.PrevCheckpointFile)).Step);
        TestUtil.DamageSection(Path.Combine(dirB, Checkpoint.FileName), "ema");
        var messages = new List<string>();
        var steps = new List<long>();
        using (var t = new Trainer(Tiny(20), dirB, resume: true, onMessage: messages.Add, resumeFrom: "prev"))
        {
            Assert.Equal(15, t.Step);
            t.OnStepLoss = (s, _) => steps.Add(s);
            t.Run();
        }
        Assert.Equal([16, 17, 18, 19, 20], steps);
        Assert.Contains(messages, m => m.StartsWith($"resuming {dirB} at step 15 from ") && m.EndsWith(RunFolder.PrevCheckpointFile));
        // Bit for bit the uninterrupted run's weights and optimizer state; the damaged file was not kept as previous.
        var a = Checkpoint.Read(Path.Combine(dirA, Checkpoint.FileName)).Sections;
        var b = Checkpoint.Read(Path.Combine(dirB, Checkpoint.FileName)).Sections;
        foreach (var name in new[] { "model", "ema", "optimizer" }) Assert.True(a[name].AsSpan().SequenceEqual(b[name]), name);
        Assert.Equal(15, Checkpoint.ReadHeader(Path.Combine(dirB, RunFolder.PrevCheckpointFile)).Step);
        var logA = RunLog.Read(Path.Combine(dirA, RunLog.FileName));
        var logB = RunLog.Read(Path.Combine(dirB, RunLog.FileName));
        Assert.Equal(logA.Select(e => (e.Step, e.Loss)), logB.Select(e => (e.Step, e.Loss)));
        // A named file works the same way; a missing one is one line.
        Assert.Contains("no such checkpoint file", Assert.Throws<UserError>(() => new Trainer(Tiny(20), dirB, resume: true, resumeFrom: Path.Combine(dirB, "nope.ckpt"))).Message);
    }

    [Fact]
    public void Keep_checkpoints_keeps_the_last_K_by_step()
    {
        var dir = Train("keep", Tiny(25, keep: 2));
        var kept = Directory.GetFiles(dir, "checkpoint*.ckpt").Select(f => Path.GetFileName(f)).Order().ToArray();
        Assert.Equal(["checkpoint.ckpt", "checkpoint.step-0000015.ckpt", "checkpoint.step-0000020.ckpt"], kept);
        Assert.Equal(15, Checkpoint.ReadHeader(Path.Combine(dir, "checkpoint.step-0000015.ckpt")).Step);
        var none = Train("keep0", Tiny(10, keep: 0));
        Assert.Equal(["checkpoint.ckpt"], Directory.GetFiles(none, "checkpoint*.ckpt").Select(Path.GetFileName));
        Assert.Empty(Directory.GetFiles(dir, "*.tmp-*"));
    }

    [Fact]
    public void Version_1_checkpoints_without_checksums_still_load()
    {
        var dir = Train("v1", Tiny(5));
        var path = Path.Combine(dir, Checkpoint.FileName);
        var (header, sections) = Checkpoint.Read(path);
        header.FormatVersion = 1;
        using (var w = new BinaryWriter(File.Create(path), Encoding.UTF8))
        {
            w.Write("DIFFCKPT"u8.ToArray());
            w.Write(1);
            w.Write(System.Text.Json.JsonSerializer.Serialize(header, new System.Text.Json.JsonSerializerOptions { PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.KebabCaseLower }));
            w.Write(sections.Count);
            foreach (var (name, data) in sections) { w.Write(name); w.Write((long)data.Length); w.Write(data); }
            w.Write("DIFFEND!"u8.ToArray());
        }
        using var m = TrainedModel.Load(dir);
        Assert.Equal(5, m.Step);
    }

    [Fact]
    public void A_live_lock_refuses_a_second_trainer_a_dead_one_is_taken_over_and_the_lock_goes_with_the_run()
    {
        var dir = Train("lock", Tiny(5));
        var lockPath = Path.Combine(dir, RunLock.FileName);
        Assert.False(File.Exists(lockPath), "the lock is gone after a run");

        var since = DateTime.UtcNow;
        RunLock.Write(lockPath, new RunLock.Holder(Environment.ProcessId, Environment.MachineName, since));
        var e = Assert.Throws<UserError>(() => new Trainer(Tiny(10), dir, resume: true));
        Assert.Contains("another train is running there", e.Message);
        Assert.Contains($"process {Environment.ProcessId} on {Environment.MachineName}", e.Message);
        Assert.Contains($"since {since:yyyy-MM-dd HH:mm:ss} UTC", e.Message);
        Assert.True(File.Exists(lockPath), "a refused trainer leaves the holder's lock alone");
        Assert.Contains("another train is running", Assert.Throws<UserError>(() => TrainingRun.PrepareNew(dir, force: true)).Message);

        using (var p = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!)
        {
            p.WaitForExit();
            RunLock.Write(lockPath, new RunLock.Holder(p.Id, Environment.MachineName, DateTime.UtcNow));
        }
        var messages = new List<string>();
        using (var t = new Trainer(Tiny(10), dir, resume: true, onMessage: messages.Add))
        {
            Assert.Contains(messages, m => m.StartsWith($"note: took over the stale lock {lockPath} of process "));
            Assert.Equal(Environment.ProcessId, RunLock.Read(lockPath)!.Pid);
            // A second trainer in this very process is refused too.
            Assert.Throws<UserError>(() => new Trainer(Tiny(10), dir, resume: true));
            t.Run();
        }
        Assert.False(File.Exists(lockPath));
        // Released on errors as well: a diverging run throws out of Run, and Dispose still removes the lock.
        var bad = Tiny(10); bad.Train.Lr = 1e30; bad.Train.GradClip = 0;
        var dir2 = TestUtil.TempDir("lock-err");
        using (var t = new Trainer(bad, dir2, resume: false))
        {
            Assert.True(File.Exists(Path.Combine(dir2, RunLock.FileName)));
            Assert.Throws<UserError>(t.Run);
        }
        Assert.False(File.Exists(Path.Combine(dir2, RunLock.FileName)));
    }

    /// <summary>
    /// A live holder stays live when the wall clock moved: a study worker's job lock was declared stale (and would have
    /// been taken over by the second worker) because the VM's clock was stepped after the worker started, so its start
    /// time, computed from the boot time, came out 19 s after its lock. Locks now name the process by its start in
    /// ticks since boot; those without (older locks, no /proc) allow <see cref="RunLock.Holder.ClockSlack"/>.
    /// </summary>
    [Fact]
    public void A_live_holder_is_not_stale_when_the_clock_moved_and_a_reused_process_id_is()
    {
        var self = RunLock.Self();
        Assert.Equal(Environment.ProcessId, self.Pid);
        if (OperatingSystem.IsLinux())
        {
            Assert.NotNull(self.StartTicks);
            Assert.Equal(self.StartTicks, RunLock.ProcessStartTicks(Environment.ProcessId));
            // the lock's wall time far from the process's start either way: still this live process
            Assert.False((self with { StartedUtc = DateTime.UtcNow.AddHours(-5) }).IsStale());
            Assert.False((self with { StartedUtc = DateTime.UtcNow.AddYears(-1) }).IsStale());
            // the same id with another start: the id was reused, the writer is gone
            Assert.True((self with { StartTicks = self.StartTicks + 1 }).IsStale());
            // written and read back through the file
            var path = Path.Combine(TestUtil.TempDir("lock-ticks"), "job.lock");
            RunLock.Write(path, self);
            Assert.Equal(self, RunLock.Read(path));
        }
        // without start ticks, a start up to ClockSlack after the lock's time is still the writer; later is not
        var process = Process.GetCurrentProcess().StartTime.ToUniversalTime();
        var legacy = new RunLock.Holder(Environment.ProcessId, Environment.MachineName, process.AddSeconds(-40));
        Assert.False(legacy.IsStale());
        Assert.True((legacy with { StartedUtc = process - RunLock.Holder.ClockSlack - TimeSpan.FromMinutes(1) }).IsStale());
    }

    [Fact]
    public void Of_many_takers_of_one_stale_lock_at_the_same_instant_exactly_one_gets_it()
    {
        // Two study workers started together both "took over" one stale job lock (a check-then-delete race); the
        // take-over now happens under an OS lock. Eight threads race for the same stale lock, forty times.
        var dir = TestUtil.TempDir("lock-race");
        int gonePid;
        using (var gone = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!) { gone.WaitForExit(); gonePid = gone.Id; }
        var path = Path.Combine(dir, "job.lock");
        const int takers = 8;
        for (int round = 0; round < 40; round++)
        {
            RunLock.Write(path, new RunLock.Holder(gonePid, Environment.MachineName, DateTime.UtcNow.AddMinutes(-1)));
            var got = new RunLock?[takers];
            int notes = 0;
            using var start = new Barrier(takers);
            var threads = Enumerable.Range(0, takers).Select(i => new Thread(() =>
            {
                start.SignalAndWait();
                got[i] = RunLock.TryAcquire(dir, "job.lock", _ => Interlocked.Increment(ref notes));
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            Assert.Equal(1, got.Count(l => l is not null));
            Assert.Equal(1, notes);
            Assert.Equal(Environment.ProcessId, RunLock.Read(path)!.Pid);
            foreach (var l in got) l?.Dispose();
            Assert.False(File.Exists(path));
        }
    }

    [Fact]
    public void Resume_applies_a_set_on_a_key_it_may_change_and_leftover_files_of_a_killed_save_go()
    {
        var dir = Train("resume-set", Tiny(10));
        var cfg = TrainingRun.ResumeConfig(dir, new TrainRequest { Sets = ["train.steps=17"] });
        Assert.Equal(17, cfg.Train.Steps);
        File.WriteAllText(Path.Combine(dir, "checkpoint.ckpt.tmp-1-x"), "partial");
        using (var t = new Trainer(cfg, dir, resume: true)) t.Run();
        Assert.Empty(Directory.GetFiles(dir, "*.tmp-*"));
    }
}

/// <summary>How a sampling request resolves against a checkpoint's saved sample config.</summary>
public class SampleResolveTests
{
    private static KeyValuePair<string, string> Set(string k, string v) => KeyValuePair.Create(k, v);

    [Fact]
    public void Options_of_the_saved_sampler_do_not_follow_another_sampler()
    {
        var saved = Diffusion.Sampling.SampleRun.Resolve(null, [Set("sampler", "\"heun\""), Set("rho", "5")], 1000);
        Assert.Equal("5", saved.Option("rho", "7"));
        var ddim = Diffusion.Sampling.SampleRun.Resolve(saved, [Set("sampler", "\"ddim\"")], 1000);
        Assert.Equal("ddim", ddim.Sampler);
        Assert.Equal(50, ddim.Steps);
        Assert.False(ddim.Options?.ContainsKey("rho") ?? false);
        // Same sampler: the saved option and steps follow.
        var again = Diffusion.Sampling.SampleRun.Resolve(saved, [], 1000);
        Assert.Equal("5", again.Option("rho", "7"));
        Assert.Equal(saved.Steps, again.Steps);
        // An option given for the wrong sampler is still refused.
        Assert.Throws<ConfigException>(() => Diffusion.Sampling.SampleRun.Resolve(saved, [Set("sampler", "\"ddim\""), Set("rho", "5")], 1000));
    }

    [Fact]
    public void Euler_and_heun_refuse_clipping_rather_than_ignore_it()
    {
        var e = Assert.Throws<ConfigException>(() => Diffusion.Sampling.SampleRun.Resolve(null, [Set("sampler", "\"euler\""), Set("clip-denoised", "true")], 1000));
        Assert.Contains("never clips", e.Message);
    }
}
