using Diffusion.Config;
using Diffusion.Models;
using Diffusion.Sampling;
using Diffusion.Schedules;
using Diffusion.Training;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>Split-invariant sampling: sample i depends on (seed, i) only, not on the batch size, the shard or the process.</summary>
public class ShardTests
{
    private static readonly SampleConfig Ddpm = new() { Sampler = "ddpm", Steps = 20 };
    private static readonly SampleConfig DpmSolver = new() { Sampler = "dpm-solver", Steps = 8 };
    private static readonly SampleConfig DdimEta = new() { Sampler = "ddim", Steps = 10, Eta = 0.7 };

    /// <summary>Samples <paramref name="indices"/> of a run with the library's split-invariant path.</summary>
    private static Tensor Draw(Func<NoiseSource, IDenoiser> denoiserFor, SampleConfig sc, NoiseSchedule schedule, long[] shape, ScalarType dtype,
                               IReadOnlyList<long> indices, int batch, long seed = 11)
    {
        using var noise = NoiseSource.PerSample(seed);
        using var denoiser = denoiserFor(noise);
        var sampler = Samplers.Create(sc, schedule, clipDefault: false);
        return SampleRun.DrawIndexed(sampler, denoiser, noise, indices, shape, dtype, batch);
    }

    private static long[] Range(long start, long count) => Enumerable.Range(0, (int)count).Select(i => start + i).ToArray();

    /// <summary>The rows of S contiguous shards (with a batch size of their own), joined in index order.</summary>
    private static Tensor Sharded(Func<NoiseSource, IDenoiser> denoiserFor, SampleConfig sc, NoiseSchedule schedule, long[] shape, ScalarType dtype, int n, int shards, int batch)
    {
        var parts = new List<Tensor>();
        for (int k = 0; k < shards; k++)
        {
            var (start, count) = new Shard(k, shards).Range(n);
            parts.Add(Draw(denoiserFor, sc, schedule, shape, dtype, Range(start, count), batch));
        }
        var all = cat(parts, 0);
        foreach (var p in parts) p.Dispose();
        return all;
    }

    private static void AssertBitEqual(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        Assert.True(expected.dtype == actual.dtype, what);
        using var e = expected.contiguous();
        using var a = actual.contiguous();
        var eb = e.to_type(ScalarType.Float64).data<double>().ToArray();
        var ab = a.to_type(ScalarType.Float64).data<double>().ToArray();
        for (int i = 0; i < eb.Length; i++)
            Assert.True(BitConverter.DoubleToInt64Bits(eb[i]) == BitConverter.DoubleToInt64Bits(ab[i]), $"{what}: element {i} differs: {eb[i]:R} vs {ab[i]:R}");
    }

    private static void AssertSplitInvariant(Func<NoiseSource, IDenoiser> denoiserFor, SampleConfig sc, NoiseSchedule schedule, long[] shape, ScalarType dtype, int n)
    {
        using var one = Draw(denoiserFor, sc, schedule, shape, dtype, Range(0, n), batch: 256);
        foreach (var (shards, batch) in new[] { (1, 1), (1, 4), (2, 3), (2, 256), (3, 2), (3, 5) })
        {
            using var merged = Sharded(denoiserFor, sc, schedule, shape, dtype, n, shards, batch);
            AssertBitEqual(one, merged, $"{sc.Sampler} S = {shards}, batch {batch}");
        }
        // Sample i does not depend on which other samples are drawn.
        using var alone = Draw(denoiserFor, sc, schedule, shape, dtype, [n - 2], batch: 1);
        using var row = one.narrow(0, n - 2, 1);
        AssertBitEqual(row, alone, $"{sc.Sampler} sample {n - 2} alone");
    }

    [Fact]
    public void Exact_mixture_samples_are_split_invariant()
    {
        var gmm = TestUtil.SmallMixture();
        var schedule = NoiseSchedule.Linear(1000);
        foreach (var sc in new[] { Ddpm, DpmSolver, DdimEta })
            AssertSplitInvariant(_ => new GaussianMixtureDenoiser(gmm, schedule), sc, schedule, [gmm.Dim], ScalarType.Float64, 13);
    }

    /// <summary>A tiny network trained a few steps (an MLP on toy data, optionally SMD; or a tiny UNet on 8×8 arrays).</summary>
    internal static (RunConfig Cfg, DenoiserNetwork Net, NoiseSchedule Schedule, long[] Shape) TinyTrained(string name, params string[] sets)
    {
        var tree = ConfigLoader.EmbeddedTree("toy");
        foreach (var s in new[] { "data.spec=\"toy:gmm-grid?n=500\"", "model.hidden=32", "model.blocks=1", "train.steps=10",
                                  "train.batch-size=32", "train.warmup-steps=2", "train.log-every=5", "train.checkpoint-every=1000", "ema.decay=0.5" }.Concat(sets))
            ConfigLoader.ApplySet(tree, s);
        var cfg = ConfigLoader.FromTree(tree, "shard test");
        using var trainer = new Trainer(cfg, TestUtil.TempDir("shard-" + name), resume: false);
        trainer.Run();
        var net = ModelFactory.Create(cfg, [2]);
        net.load_state_dict(trainer.EmaModel.state_dict());
        net.eval();
        return (cfg, net, trainer.Schedule, [2]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Trained_network_samples_are_split_invariant(bool smd)
    {
        var (cfg, net, schedule, shape) = TinyTrained(smd ? "smd" : "mlp", smd ? ["smd.enabled=true", "smd.latent-dim=4"] : []);
        using var _ = net;
        foreach (var sc in new[] { Ddpm, DpmSolver })
            AssertSplitInvariant(noise => DenoiserStack.ForSampling(cfg, net, noise, sc), sc, schedule, shape, ScalarType.Float32, 11);
    }

    [Fact]
    public void Unet_samples_are_split_invariant()
    {
        // A small UNet with attention, as image runs use (weights as initialised: the arithmetic, not the training, matters here).
        var tree = ConfigLoader.EmbeddedTree("image28");
        foreach (var set in new[] { "model.channels=16", "model.channel-mult=[1,2]", "model.attention-resolutions=[4]", "model.head-channels=16", "model.dropout=0.0" })
            ConfigLoader.ApplySet(tree, set);
        var cfg = ConfigLoader.FromTree(tree, "shard unet");
        long[] shape = [1, 8, 8];
        using var net = ModelFactory.Create(cfg, shape);
        net.eval();
        var schedule = cfg.Schedule.Build();
        var ddpm = new SampleConfig { Sampler = "ddpm", Steps = 4 };
        AssertSplitInvariant(noise => DenoiserStack.ForSampling(cfg, net, noise, ddpm), ddpm, schedule, shape, ScalarType.Float32, 7);
    }
}
