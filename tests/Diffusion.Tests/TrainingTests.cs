using Diffusion.Config;
using Diffusion.Data;
using Diffusion.Metrics;
using Diffusion.Models;
using Diffusion.Sampling;
using Diffusion.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Tests;

public class TrainingTests
{
    private static RunConfig ToyConfig(int steps, double dropout = 0.0)
    {
        var cfg = ConfigLoader.FromTree(ConfigLoader.EmbeddedTree("toy"), "toy");
        cfg.Data.Spec = "toy:gmm-grid?n=20000";
        cfg.Model.Hidden = 128;
        cfg.Model.Blocks = 3;
        cfg.Model.Dropout = dropout;
        cfg.Train.Steps = steps;
        cfg.Train.BatchSize = 256;
        cfg.Train.LogEvery = 10;
        cfg.Train.CheckpointEvery = 1000;
        cfg.Train.WarmupSteps = 20;
        cfg.Ema.Decay = 0.99;
        return cfg;
    }

    [Fact]
    public void Mlp_on_gmm_grid_lowers_its_loss_and_samples_land_near_the_grid()
    {
        var dir = TestUtil.TempDir("toy-train");
        var cfg = ToyConfig(1200);
        using var trainer = new Trainer(cfg, dir, resume: false);
        var losses = new List<double>();
        trainer.OnStepLoss = (_, l) => losses.Add(l);
        trainer.Run();
        double first = losses.Take(20).Average(), last = losses.Skip(losses.Count - 100).Average();
        Assert.True(last < 0.6 * first, $"loss should fall: first 20 steps {first:F3}, last 100 {last:F3}");

        // 1000-step DDPM from the EMA weights: most samples within 3σ of a grid mode, most modes covered.
        using var _ = no_grad();
        var sampler = new DdpmSampler(trainer.Schedule, Enumerable.Range(0, 1000).ToArray(), false, false);
        using var gen = new Generator(1);
        using var xT = randn([2000, 2], generator: gen);
        using var x = sampler.Sample(new NetworkDenoiser(trainer.EmaModel, Prediction.Epsilon), xT, gen);
        var s = MixtureMetrics.Score(trainer.Data.Mixture!, x);
        // Untrained, the samples are Gaussian noise: ≈ 2% within 3σ of a mode (49·π·0.15²/area).
        Assert.True(s.FractionWithin3Sigma > 0.3, $"fraction within 3σ {s.FractionWithin3Sigma:F3}");
        Assert.True(s.ModesCovered >= 45, $"modes covered {s.ModesCovered}/49");
        Assert.True(File.Exists(Path.Combine(dir, Checkpoint.FileName)));
        Assert.True(RunLog.Read(Path.Combine(dir, RunLog.FileName)).Count == 120);
    }

    [Fact]
    public void Resume_continues_exactly_like_an_uninterrupted_run()
    {
        var full = new List<double>();
        var dirA = TestUtil.TempDir("resume-a");
        using (var a = new Trainer(ToyConfig(40, dropout: 0.1), dirA, resume: false))
        {
            a.OnStepLoss = (_, l) => full.Add(l);
            a.Run();
        }
        var dirB = TestUtil.TempDir("resume-b");
        var firstHalf = new List<double>();
        using (var b = new Trainer(ToyConfig(17, dropout: 0.1), dirB, resume: false))
        {
            b.OnStepLoss = (_, l) => firstHalf.Add(l);
            b.Run();
        }
        var second = new List<(long, double)>();
        using (var c = new Trainer(ToyConfig(40, dropout: 0.1), dirB, resume: true))
        {
            Assert.Equal(17, c.Step);
            c.OnStepLoss = (s, l) => second.Add((s, l));
            c.Run();
        }
        Assert.Equal(full.Take(17), firstHalf);
        Assert.Equal(Enumerable.Range(18, 23).Select(i => (long)i), second.Select(p => p.Item1));
        Assert.Equal(full.Skip(17), second.Select(p => p.Item2));

        // The final checkpoints hold identical weights.
        using var ma = TrainedModel.Load(dirA, "model");
        using var mb = TrainedModel.Load(dirB, "model");
        foreach (var ((name, pa), (_, pb)) in ma.Network.named_parameters().Zip(mb.Network.named_parameters()))
            Assert.True(pa.equal(pb).all().item<bool>(), name);
        // The log has no duplicated steps after the resume.
        var log = RunLog.Read(Path.Combine(dirB, RunLog.FileName));
        Assert.Equal(log.Select(e => e.Step).Distinct().Count(), log.Count);
    }

    [Fact]
    public void A_run_stopped_on_request_writes_its_checkpoint_there_and_resumes_exactly()
    {
        var full = new List<double>();
        using (var a = new Trainer(ToyConfig(40, dropout: 0.1), TestUtil.TempDir("stop-a"), resume: false))
        {
            a.OnStepLoss = (_, l) => full.Add(l);
            a.Run();
            Assert.False(a.Stopped);
        }
        var dir = TestUtil.TempDir("stop-b");
        var losses = new List<double>();
        var cfg = ToyConfig(40, dropout: 0.1);
        cfg.Train.CheckpointEvery = 10;   // step 17 is not a checkpoint step: the stop writes one there
        using (var b = new Trainer(cfg, dir, resume: false))
        {
            b.OnStepLoss = (_, l) => losses.Add(l);
            b.StopRequested = () => losses.Count >= 17;
            b.Run();
            Assert.True(b.Stopped);
            Assert.Equal(17, b.Step);
        }
        using (var c = new Trainer(cfg, dir, resume: true))
        {
            Assert.Equal(17, c.Step);
            c.OnStepLoss = (_, l) => losses.Add(l);
            c.Run();
            Assert.False(c.Stopped);
        }
        Assert.Equal(full, losses);
    }

    [Fact]
    public void A_run_killed_after_a_checkpoint_resumes_from_it_and_drops_later_log_lines()
    {
        var dir = TestUtil.TempDir("killed");
        var cfg = ToyConfig(30);
        cfg.Train.CheckpointEvery = 10;
        cfg.Train.LogEvery = 5;
        using (var t = new Trainer(cfg, dir, resume: false)) t.Run();
        // Simulate a kill at step 27: the checkpoint of step 20 plus log lines up to 25 and a torn line.
        var cfg20 = ToyConfig(20); cfg20.Train.CheckpointEvery = 10; cfg20.Train.LogEvery = 5;
        var dir2 = TestUtil.TempDir("killed2");
        using (var t = new Trainer(cfg20, dir2, resume: false)) t.Run();
        File.AppendAllText(Path.Combine(dir2, RunLog.FileName), "{\"step\":25,\"loss\":1,\"grad_norm\":1,\"lr\":1,\"samples_per_second\":1}\n{\"step\":3");
        File.WriteAllText(Path.Combine(dir2, Checkpoint.FileName + ".tmp-123-abc"), "partial write");
        using (var t = new Trainer(cfg, dir2, resume: true)) t.Run();
        var a = RunLog.Read(Path.Combine(dir, RunLog.FileName));
        var b = RunLog.Read(Path.Combine(dir2, RunLog.FileName));
        Assert.Equal(a.Select(e => e.Step), b.Select(e => e.Step));
        Assert.Equal(a.Select(e => e.Loss), b.Select(e => e.Loss));
    }

    [Fact]
    public void Messages_of_the_constructor_reach_the_callback()
    {
        var cfg = ToyConfig(2);
        cfg.Data.Spec = "toy:moons?n=100";
        var dir = TestUtil.TempDir("messages");
        var messages = new List<string>();
        using (var t = new Trainer(cfg, dir, resume: false, onMessage: messages.Add)) t.Run();
        // The MLP computes in float32 under the default (auto) precision, and the trainer says so.
        Assert.Equal(["note: batch size 256 exceeds the 100 examples; batches repeat examples", "train: precision float32"], messages);
        messages.Clear();
        cfg.Train.Steps = 3;
        using (var t = new Trainer(cfg, dir, resume: true, onMessage: messages.Add)) t.Run();
        Assert.Equal(["note: batch size 256 exceeds the 100 examples; batches repeat examples", "train: precision float32", $"resuming {dir} at step 2"], messages);
    }

    [Fact]
    public void Training_memory_does_not_grow()
    {
        var dir = TestUtil.TempDir("memory");
        var cfg = ToyConfig(300);
        cfg.Train.CheckpointEvery = 100;
        using var trainer = new Trainer(cfg, dir, resume: false);
        long live50 = 0, live300 = 0, rss50 = 0, rss300 = 0;
        trainer.OnStepLoss = (s, _) =>
        {
            if (s == 50) { live50 = DisposeScopeManager.Statistics.ThreadTotalLiveCount; rss50 = System.Diagnostics.Process.GetCurrentProcess().WorkingSet64; }
            if (s == 300) { live300 = DisposeScopeManager.Statistics.ThreadTotalLiveCount; rss300 = System.Diagnostics.Process.GetCurrentProcess().WorkingSet64; }
        };
        trainer.Run();
        Assert.Equal(live50, live300);
        Assert.True(rss300 - rss50 < 64L << 20, $"resident memory grew by {(rss300 - rss50) >> 20} MiB over 250 steps");
    }

    [Fact]
    public void Sampling_memory_does_not_grow()
    {
        var g = TestUtil.SmallMixture();
        var s = Schedules.NoiseSchedule.Linear(200);
        var den = new GaussianMixtureDenoiser(g, s);
        using var xT = randn([256, 2], dtype: ScalarType.Float64);
        var sampler = new DdpmSampler(s, Enumerable.Range(0, 200).ToArray(), false, false);
        TestUtil.AssertSamplingLeaksNothing(sampler, den, xT);
    }

    [Fact]
    public void Learning_rate_warms_up_then_follows_the_schedule()
    {
        var cfg = ToyConfig(100);
        cfg.Train.WarmupSteps = 10;
        cfg.Train.Lr = 1e-3;
        cfg.Train.LrSchedule = "cosine";
        using var t = new Trainer(cfg, TestUtil.TempDir("lr"), resume: false);
        Assert.Equal(1e-4, t.LearningRate(0), 12);
        Assert.Equal(1e-3, t.LearningRate(9), 12);
        Assert.Equal(1e-3, t.LearningRate(10), 12);
        Assert.Equal(0.5e-3, t.LearningRate(55), 12);
        Assert.Equal(0.0, t.LearningRate(100), 12);
    }

    [Fact]
    public void Ema_follows_the_documented_decay()
    {
        using var a = new MlpDenoiser(2, 8, 1);
        using var b = new MlpDenoiser(2, 8, 1);
        var ema = new Ema(b, 0.9, warmup: true);
        ema.CopyFrom(a);
        Assert.Equal(1.0 / 10, ema.DecayAt(0), 12);
        Assert.Equal(0.9, ema.DecayAt(1000), 12);
        var p0 = b.parameters().First().clone();
        using (no_grad()) foreach (var p in a.parameters()) p.add_(1.0);
        ema.Update(a, 5); // decay min(0.9, 6/15 = 0.4)
        var expected = p0 * 0.4 + (p0 + 1.0) * 0.6;
        Assert.True(b.parameters().First().allclose(expected, rtol: 1e-6, atol: 1e-6));
    }
}
