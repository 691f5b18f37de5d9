using System.Text.Json.Nodes;
using Diffusion.Data;
using Diffusion.Metrics;
using Diffusion.Sampling;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>eval --labels: per-class FID and classifier accuracy, against independent computations.</summary>
public class ClassScoresTests
{
    [Fact]
    public void Per_class_fid_and_accuracy_equal_direct_computations()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(3);
        var samples = randn([60, 3], dtype: ScalarType.Float64, generator: gen);
        var reference = randn([90, 3], dtype: ScalarType.Float64, generator: gen) + 0.5;
        long[] sl = Enumerable.Range(0, 60).Select(i => (long)(i % 3)).ToArray();
        sl[59] = 3; // one sample of the null class: counted nowhere
        long[] rl = Enumerable.Range(0, 90).Select(i => (long)(i / 30)).ToArray();
        long[] predicted = sl.Select((l, i) => i % 4 == 0 ? (l + 1) % 3 : l).ToArray(); // every 4th wrong
        var scores = ClassScores.Compute(samples, sl, reference, rl, predicted, 3, ["a", "b", "c"], "classifier:test");
        Assert.Equal(3, scores.PerClass.Count);
        for (int c = 0; c < 3; c++)
        {
            var rows = Enumerable.Range(0, 59).Where(i => sl[i] == c).ToArray();
            var x = samples.index_select(0, tensor(rows.Select(i => (long)i).ToArray()));
            var y = reference.narrow(0, 30 * c, 30);
            // FID from its definition: ‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2(Σ1Σ2)^½), the square root through eigenvalues of Σ1Σ2
            var (m1, s1) = (x.mean([0]), Cov(x));
            var (m2, s2) = (y.mean([0]), Cov(y));
            var ev = linalg.eigvals(s1.matmul(s2)).real.clamp_min(0).sqrt().sum().item<double>();
            double fid = (m1 - m2).pow(2).sum().item<double>() + (s1 + s2).trace().item<double>() - 2 * ev;
            var s = scores.PerClass[c];
            Assert.Equal(fid, s.Fid!.Value, 1e-6);
            Assert.Equal(rows.Length, s.N);
            Assert.Equal(30, s.ReferenceN);
            Assert.Equal(rows.Count(i => predicted[i] == c) / (double)rows.Length, s.Accuracy!.Value, 12);
            Assert.Equal(new[] { "a", "b", "c" }[c], s.Name);
        }
        Assert.Equal(Enumerable.Range(0, 59).Count(i => predicted[i] == sl[i]) / 59.0, scores.Accuracy!.Value, 12);
        var o = new JsonObject();
        scores.AddTo(o);
        Assert.Equal(3, o["per_class"]!.AsArray().Count);
        Assert.Equal(scores.Accuracy, o["classifier_accuracy"]!.GetValue<double>());
    }

    private static Tensor Cov(Tensor x)
    {
        var c = x - x.mean([0]);
        return c.t().matmul(c) / (x.shape[0] - 1);
    }

    [Fact]
    public void Eval_labels_reads_the_labels_beside_the_samples()
    {
        var dir = TestUtil.TempDir("eval-labels");
        string s = Path.Combine(dir, "s.npy"), r = Path.Combine(dir, "r.npy"), rl = Path.Combine(dir, "r.labels.npy");
        using (var g = new Generator(1))
        {
            using var x = randn([40, 2], generator: g);
            Npy.Write(s, x);
            using var y = randn([80, 2], generator: g);
            Npy.Write(r, y);
        }
        Npy.WriteLabels(rl, Enumerable.Range(0, 80).Select(i => (long)(i % 2)).ToArray());
        var args = new[] { "eval", "--samples", s, "--reference", $"npy:{r}?labels={rl}", "--features", "raw", "--metrics", "fid", "--labels", "--format", "json", "--quiet" };
        CliTests.AssertOneLineError(FuzzTests.RunInProcess(args), $"--labels: {SampleRun.LabelsPath(s)} not found");
        Npy.WriteLabels(SampleRun.LabelsPath(s), [0, 1, 2]);
        CliTests.AssertOneLineError(FuzzTests.RunInProcess(args), $"{SampleRun.LabelsPath(s)}: 3 labels; expected 40, one per example");
        Npy.WriteLabels(SampleRun.LabelsPath(s), Enumerable.Range(0, 40).Select(i => (long)(i / 20)).ToArray());
        var res = FuzzTests.RunInProcess(args);
        Assert.True(res.Code == 0, res.Err);
        var o = JsonNode.Parse(res.Out)!.AsObject();
        var per = o["per_class"]!.AsArray();
        Assert.Equal(2, per.Count);
        Assert.Equal(20, per[0]!["n"]!.GetValue<long>());
        Assert.Equal(40, per[1]!["reference_n"]!.GetValue<long>());
        Assert.Null(o["classifier_accuracy"]); // raw features: no classifier
        // class 0's FID: the first 20 samples against the even reference rows
        using var sx = Npy.Read(s);
        using var ry = Npy.Read(r);
        using var a = FeatureStatistics.FromFeatures(sx.narrow(0, 0, 20));
        using var idx = arange(0, 80, 2, dtype: ScalarType.Int64);
        using var b = FeatureStatistics.FromFeatures(ry.index_select(0, idx));
        Assert.Equal(FrechetDistance.Compute(a, b), per[0]!["fid"]!.GetValue<double>(), 6);
        // an unlabelled reference is refused
        CliTests.AssertOneLineError(FuzzTests.RunInProcess(["eval", "--samples", s, "--reference", $"npy:{r}", "--features", "raw", "--labels", "--quiet"]),
            $"--labels: the reference npy:{r} has no labels");

        // the same samples and labels as a merged part of the whole run (.npz, what diffusion merge --out FILE.npz writes):
        // the same per-class scores; a shard of a run and a part without labels are refused
        string whole = Path.Combine(dir, "whole.npz"), shard = Path.Combine(dir, "shard.npz"), bare = Path.Combine(dir, "bare.npz");
        var manifest = new PartManifest { ExampleShape = [2], N = 40, Count = 40 };
        using (var l = tensor(Enumerable.Range(0, 40).Select(i => (long)(i / 20)).ToArray()))
        {
            SampleParts.Write(whole, sx, manifest, l);
            using var half = sx.narrow(0, 0, 20);
            using var hl = l.narrow(0, 0, 20);
            SampleParts.Write(shard, half, manifest with { Shards = 2, Count = 20 }, hl);
        }
        SampleParts.Write(bare, sx, manifest);
        string[] npz = ["eval", "--reference", $"npy:{r}?labels={rl}", "--features", "raw", "--metrics", "fid", "--labels", "--format", "json", "--quiet"];
        var fromPart = FuzzTests.RunInProcess([.. npz, "--samples", whole]);
        Assert.True(fromPart.Code == 0, fromPart.Err);
        Assert.Equal(per.ToJsonString(), JsonNode.Parse(fromPart.Out)!["per_class"]!.ToJsonString());
        CliTests.AssertOneLineError(FuzzTests.RunInProcess([.. npz, "--samples", shard]), "is shard 0 of 2");
        CliTests.AssertOneLineError(FuzzTests.RunInProcess([.. npz, "--samples", bare]), $"--labels: {bare} holds no labels");
    }
}
