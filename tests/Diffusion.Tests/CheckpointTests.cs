using Diffusion.Config;
using Diffusion.Training;
using static TorchSharp.torch;

namespace Diffusion.Tests;

public class CheckpointTests
{
    private static string TrainTiny(string name)
    {
        var cfg = ConfigLoader.FromTree(ConfigLoader.EmbeddedTree("toy"));
        cfg.Data.Spec = "toy:rings?n=1000";
        cfg.Model.Hidden = 32; cfg.Model.Blocks = 1;
        cfg.Train.Steps = 5; cfg.Train.BatchSize = 16; cfg.Train.LogEvery = 1;
        var dir = TestUtil.TempDir(name);
        using var t = new Trainer(cfg, dir, resume: false);
        t.Run();
        return dir;
    }

    [Fact]
    public void Checkpoint_round_trips_config_weights_and_step()
    {
        var dir = TrainTiny("ckpt");
        var header = Checkpoint.ReadHeader(Path.Combine(dir, Checkpoint.FileName));
        Assert.Equal(5, header.Step);
        Assert.Equal(new long[] { 2 }, header.ExampleShape);
        var cfg = header.RunConfig("test");
        Assert.Equal("toy:rings?n=1000", cfg.Data.Spec);
        Assert.Equal(32, cfg.Model.Hidden);
        using var ema = TrainedModel.Load(dir);
        using var raw = TrainedModel.Load(dir, "model");
        using var x = randn(4, 2);
        using var t = full(4, 10f);
        using var _ = no_grad();
        Assert.False(ema.Network.call(x, t).equal(raw.Network.call(x, t)).all().item<bool>(), "EMA and raw weights differ after training");
        Assert.Empty(Directory.GetFiles(dir, "*.tmp-*"));
    }

    [Fact]
    public void Damaged_checkpoints_are_one_line_errors()
    {
        var dir = TrainTiny("ckpt-bad");
        var path = Path.Combine(dir, Checkpoint.FileName);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<UserError>(() => TrainedModel.Load(dir));
        Assert.Contains("corrupt or truncated", e.Message);
        Assert.DoesNotContain("\n", e.Message);
        File.WriteAllText(path, "hello");
        Assert.Contains("not a diffusion checkpoint", Assert.Throws<UserError>(() => TrainedModel.Load(path)).Message);
        Assert.Contains("holds no checkpoint.ckpt", Assert.Throws<UserError>(() => TrainedModel.Load(TestUtil.TempDir("empty"))).Message);
        Assert.Contains("no such file", Assert.Throws<UserError>(() => TrainedModel.Load(Path.Combine(dir, "nope.ckpt"))).Message);
    }

    [Fact]
    public void A_new_run_refuses_to_overwrite_an_existing_one()
    {
        var dir = TrainTiny("ckpt-exists");
        var cfg = Checkpoint.ReadHeader(Path.Combine(dir, Checkpoint.FileName)).RunConfig("x");
        var e = Assert.Throws<UserError>(() => new Trainer(cfg, dir, resume: false));
        Assert.Contains("--resume", e.Message);
    }

    [Fact]
    public void A_checkpoint_whose_schedule_rebuilds_differently_is_refused_naming_both_fingerprints()
    {
        var dir = TrainTiny("ckpt-schedule");
        var path = Path.Combine(dir, Checkpoint.FileName);
        var (header, sections) = Checkpoint.Read(path);
        var trained = Schedules.NoiseSchedule.Linear(1000).Fingerprint;
        Assert.Equal(trained, header.ScheduleFingerprint);
        // The saved config now describes another schedule (as if the linear formula had changed): refused on load and on resume.
        header.Config["schedule"]!["name"] = "cosine";
        Checkpoint.Write(path, header, sections.Select(kv => (kv.Key, kv.Value)).ToList());
        var cosine = Schedules.NoiseSchedule.Cosine(1000).Fingerprint;
        var e = Assert.Throws<UserError>(() => TrainedModel.Load(dir));
        Assert.Contains(trained, e.Message);
        Assert.Contains(cosine, e.Message);
        var cfg = header.RunConfig("test");
        Assert.Contains(cosine, Assert.Throws<UserError>(() => new Trainer(cfg, dir, resume: true)).Message);
        // A checkpoint written before fingerprints existed is not checked.
        header.ScheduleFingerprint = "";
        Checkpoint.Write(path, header, sections.Select(kv => (kv.Key, kv.Value)).ToList());
        using var _ = TrainedModel.Load(dir);
    }

    [Fact]
    public void The_schedule_fingerprint_covers_T_and_every_beta()
    {
        var a = Schedules.NoiseSchedule.Linear(1000);
        Assert.StartsWith("sha256:", a.Fingerprint);
        Assert.Equal(a.Fingerprint, Schedules.NoiseSchedule.Linear(1000).Fingerprint);
        Assert.Equal(a.Fingerprint, new Schedules.NoiseSchedule(a.Betas).Fingerprint);
        var betas = (double[])a.Betas.Clone();
        betas[500] = BitConverter.Int64BitsToDouble(BitConverter.DoubleToInt64Bits(betas[500]) + 1);   // one ulp
        Assert.NotEqual(a.Fingerprint, new Schedules.NoiseSchedule(betas).Fingerprint);
        Assert.NotEqual(a.Fingerprint, Schedules.NoiseSchedule.Linear(999).Fingerprint);
    }
}
