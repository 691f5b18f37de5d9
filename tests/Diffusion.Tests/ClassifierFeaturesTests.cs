using Diffusion.Data;
using Diffusion.Metrics;
using Diffusion.Metrics.Features;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>The classifier behind classifier:DATASET features, on small synthetic data made here (not the real sets).</summary>
public class ClassifierFeaturesTests
{
    /// <summary>Class 0: a bright horizontal bar at a random row; class 1: a vertical bar at a random column; noise on both.</summary>
    private static Dataset Bars(int n, ulong seed, string spec)
    {
        using var g = new Generator(seed);
        var x = full([n, 1, 16, 16], -1.0f);
        var labels = new long[n];
        using var pos = randint(3, 13, [n], generator: g);
        var p = pos.data<long>().ToArray();
        for (int i = 0; i < n; i++)
        {
            labels[i] = i % 2;
            if (labels[i] == 0) x[i, 0, p[i]].fill_(1.0f);
            else x[i, 0, TensorIndex.Colon, p[i]].fill_(1.0f);
        }
        using var noise = randn(x.shape, generator: g) * 0.3f;
        x.add_(noise);
        return new Dataset(spec, x, tensor(labels));
    }

    private static readonly ClassifierOptions Small = new() { Epochs = 3, BatchSize = 32, Lr = 3e-3, Width = 8, Seed = 4 };

    [Fact]
    public void Trains_to_high_test_accuracy_deterministically_and_caches_per_key()
    {
        using var train = Bars(256, 1, "bars");
        using var test = Bars(200, 2, "bars:test");
        var cache = TestUtil.TempDir("classifier-cache");
        var log = new List<string>();
        using var a = ClassifierFeatures.LoadOrTrain("bars", train, test, cache, Small, log.Add);
        Assert.True(a.Info.TestAccuracy > 0.95, $"test accuracy {a.Info.TestAccuracy:P1}");
        Assert.Equal(200, a.Info.TestCount);
        Assert.Equal("classifier:bars", a.Name);
        Assert.Contains(log, l => l.Contains("test accuracy"));
        var files = Directory.GetFiles(cache).Select(f => Path.GetFileName(f)).Order().ToArray();
        Assert.Equal([$"bars-{a.Info.Key}.ckpt", $"bars-{a.Info.Key}.json"], files);

        // Same seed and data: identical weights whether trained again or loaded from the cache.
        using var b = ClassifierFeatures.Train("bars", train, test, Small);
        using var c = ClassifierFeatures.LoadOrTrain("bars", train, test, cache, Small, log.Add);
        Assert.Contains(log, l => l.Contains("cached"));
        foreach (var ((name, pa), (_, pb), (_, pc)) in a.Network.named_parameters().Zip(b.Network.named_parameters(), c.Network.named_parameters()))
        {
            Assert.True(pa.equal(pb).all().item<bool>(), $"retrained {name} differs");
            Assert.True(pa.equal(pc).all().item<bool>(), $"cached {name} differs");
        }
        Assert.Equal(a.Info.TestAccuracy, c.Info.TestAccuracy);

        // Another seed is another cache entry (and other weights).
        using var d = ClassifierFeatures.LoadOrTrain("bars", train, test, cache, Small with { Seed = 5 });
        Assert.NotEqual(a.Info.Key, d.Info.Key);
        Assert.Equal(4, Directory.GetFiles(cache).Length);
    }

    [Fact]
    public void Penultimate_features_separate_the_classes()
    {
        using var train = Bars(256, 1, "bars");
        using var test = Bars(400, 3, "bars:test");
        using var clf = ClassifierFeatures.Train("bars", train, test, Small);
        using var f = clf.Extract(test.Data);
        Assert.Equal(new long[] { 400, 32 }, f.shape);   // 4w features
        using var isH = test.Labels! == 0;
        using var fh = f.index_select(0, isH.nonzero().squeeze(1));
        using var fv = f.index_select(0, (~isH).nonzero().squeeze(1));
        using var s1 = FeatureStatistics.FromFeatures(fh.narrow(0, 0, 100));
        using var s2 = FeatureStatistics.FromFeatures(fh.narrow(0, 100, 100));
        using var sv = FeatureStatistics.FromFeatures(fv.narrow(0, 0, 100));
        double within = FrechetDistance.Compute(s1, s2), across = FrechetDistance.Compute(s1, sv);
        Assert.True(across > 10 * within, $"FID within a class {within:G3}, across classes {across:G3}");
    }

    [Fact]
    public void Unknown_datasets_and_wrong_shapes_are_one_line_errors()
    {
        var e = Assert.Throws<UserError>(() => ClassifierFeatures.ForDataset("toy:moons", null, TestUtil.TempDir("c")));
        Assert.Contains("expected one of classifier:fashion-mnist, classifier:mnist", e.Message);
        using var train = Bars(64, 1, "bars");
        using var clf = ClassifierFeatures.Train("bars", train, train, Small with { Epochs = 1 });
        using var rgb = zeros(2, 3, 16, 16);
        Assert.Contains("expected images of shape [N, 1, 16, 16]", Assert.Throws<UserError>(() => clf.Extract(rgb)).Message);
    }
}
