using Diffusion.Sampling;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>sample --shard k/S and merge as a user runs them: the merged file equals the unsharded run byte for byte.</summary>
public class ShardCliTests
{
    private static (int Code, string Out, string Err) Cli(params string[] args) => FuzzTests.RunInProcess(args);

    private static void Ok((int Code, string Out, string Err) r) => Assert.True(r.Code == 0, r.Err);

    private static void OneLineError((int Code, string Out, string Err) r, params string[] contains)
    {
        Assert.NotEqual(0, r.Code);
        var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1 && lines[0].StartsWith("error: "), $"expected one error line, got:\n{r.Err}");
        foreach (var c in contains) Assert.Contains(c, lines[0]);
    }

    internal static string MixtureSpec(string dir)
    {
        string spec = Path.Combine(dir, "mix.json");
        File.WriteAllText(spec, """{"weights":[0.3,0.7],"means":[[-2,0.5],[1.5,-1]],"stds":[0.4,0.6],"schedule":{"name":"linear","T":1000}}""");
        return spec;
    }

    internal static string TinyCheckpoint(string dir, string name, int seed = 0)
    {
        string run = Path.Combine(dir, name);
        Ok(Cli("train", "--data", "toy:gmm-grid?n=400", "--steps", "8", "--out", run, "--quiet", "--seed", seed.ToString(),
               "--set", "model.hidden=32", "--set", "model.blocks=1", "--set", "train.batch-size=32", "--set", "train.warmup-steps=2",
               "--set", "smd.enabled=true", "--set", "smd.latent-dim=4", "--set", "sample.n=4", "--set", "sample.steps=5"));
        return run;
    }

    /// <summary>Unsharded, then S = 1, 2, 3 shards (each with its own batch size) merged: the same .npy bytes.</summary>
    private static void AssertShardsMergeToTheWhole(string dir, string tag, string[] source, string[] sampler, int n)
    {
        string whole = Path.Combine(dir, $"{tag}-whole.npy");
        Ok(Cli(["sample", .. source, .. sampler, "--n", n.ToString(), "--seed", "7", "--batch-size", "256", "--out", whole, "--quiet"]));
        var expected = File.ReadAllBytes(whole);
        foreach (int shards in new[] { 1, 2, 3 })
        {
            var parts = new List<string>();
            for (int k = 0; k < shards; k++)
            {
                string part = Path.Combine(dir, $"{tag}-{k}of{shards}.npz");
                Ok(Cli(["sample", .. source, .. sampler, "--n", n.ToString(), "--seed", "7", "--batch-size", (k + 1).ToString(),
                        "--shard", $"{k}/{shards}", "--out", part, "--quiet"]));
                parts.Add(part);
            }
            parts.Reverse();                                 // merge orders by index, not by argument order
            string merged = Path.Combine(dir, $"{tag}-merged{shards}.npy");
            Ok(Cli(["merge", .. parts, "--out", merged, "--quiet"]));
            Assert.True(expected.SequenceEqual(File.ReadAllBytes(merged)), $"{tag}: {shards} shards merged differ from the unsharded run");
        }
    }

    [Fact]
    public void Sharded_exact_mixture_and_network_samples_merge_to_the_unsharded_run()
    {
        var dir = TestUtil.TempDir("shard-cli");
        string[] gmm = ["--model", "gmm:" + MixtureSpec(dir), "--dtype", "float64"];
        AssertShardsMergeToTheWhole(dir, "gmm-ddpm", gmm, ["--sampler", "ddpm", "--steps", "40"], 8);
        AssertShardsMergeToTheWhole(dir, "gmm-dpm", gmm, ["--sampler", "dpm-solver", "--steps", "10"], 8);
        string[] net = ["--checkpoint", TinyCheckpoint(dir, "run")];
        AssertShardsMergeToTheWhole(dir, "net-ddpm", net, ["--sampler", "ddpm", "--steps", "20"], 7);
        AssertShardsMergeToTheWhole(dir, "net-dpm", net, ["--sampler", "dpm-solver", "--steps", "6"], 7);
        AssertShardsMergeToTheWhole(dir, "net-ddim-eta", net, ["--sampler", "ddim", "--steps", "6", "--eta", "1"], 7);
    }

    [Fact]
    public void Merge_refuses_parts_that_do_not_belong_together()
    {
        var dir = TestUtil.TempDir("shard-refuse");
        string run = TinyCheckpoint(dir, "a"), other = TinyCheckpoint(dir, "b", seed: 1);
        string Part(string name, string shard, params string[] extra)
        {
            string p = Path.Combine(dir, name + ".npz");
            var args = new Dictionary<string, string> { ["--checkpoint"] = run, ["--sampler"] = "ddim", ["--steps"] = "4", ["--n"] = "6", ["--seed"] = "1" };
            for (int i = 0; i < extra.Length; i += 2) args[extra[i]] = extra[i + 1];
            Ok(Cli(["sample", .. args.SelectMany(kv => new[] { kv.Key, kv.Value }), "--shard", shard, "--out", p, "--quiet"]));
            return p;
        }
        string p0 = Part("p0", "0/2"), p1 = Part("p1", "1/2");
        Ok(Cli("merge", p0, p1, "--out", Path.Combine(dir, "ok.npy"), "--quiet"));

        OneLineError(Cli("merge", p0, "--out", Path.Combine(dir, "x.npy")), "indices 3…5 of N = 6 are missing");
        OneLineError(Cli("merge", p0, Part("q0", "0/3"), p1, "--out", Path.Combine(dir, "x.npy")), "overlap", "q0.npz");
        OneLineError(Cli("merge", p0, Part("seed", "1/2", "--seed", "2"), "--out", Path.Combine(dir, "x.npy")), "seed.npz", "seed 2 differs");
        OneLineError(Cli("merge", p0, Part("steps", "1/2", "--steps", "5"), "--out", Path.Combine(dir, "x.npy")), "steps.npz", "sampler and options");
        OneLineError(Cli("merge", p0, Part("n", "1/2", "--n", "8"), "--out", Path.Combine(dir, "x.npy")), "n.npz", "N 8 differs");
        OneLineError(Cli("merge", p0, Part("w", "1/2", "--weights", "model"), "--out", Path.Combine(dir, "x.npy")), "w.npz", "weights model differs");
        string foreign = Path.Combine(dir, "other.npz");
        Ok(Cli("sample", "--checkpoint", other, "--sampler", "ddim", "--steps", "4", "--n", "6", "--seed", "1", "--shard", "1/2", "--out", foreign, "--quiet"));
        OneLineError(Cli("merge", p0, foreign, "--out", Path.Combine(dir, "x.npy")), "other.npz", "model fingerprint");
        OneLineError(Cli("merge", p0, Path.Combine(dir, "ok.npy"), "--out", Path.Combine(dir, "x.npy")), "ok.npy");
        OneLineError(Cli("sample", "--checkpoint", run, "--shard", "2/2", "--out", Path.Combine(dir, "x.npz")), "--shard 2/2", "0 ≤ k < S");
        OneLineError(Cli("sample", "--checkpoint", run, "--shard", "0/2", "--out", Path.Combine(dir, "x.npy")), "expected PART.npz");
        Assert.False(File.Exists(Path.Combine(dir, "x.npy")));
        // Parts of different shard counts join: sample i does not depend on the split.
        string q1 = Part("q1", "1/3"), q2 = Part("q2", "2/3"), r0 = Part("r0", "0/3");
        Ok(Cli("merge", r0, q1, q2, "--out", Path.Combine(dir, "ok3.npy"), "--quiet"));
        Assert.True(File.ReadAllBytes(Path.Combine(dir, "ok.npy")).SequenceEqual(File.ReadAllBytes(Path.Combine(dir, "ok3.npy"))));
    }

    /// <summary>
    /// A class-conditional model's parts carry each sample's class, and merge puts them beside the merged .npy: samples and
    /// labels equal, byte for byte, those of the unsharded run (--class random draws all N classes before the split).
    /// </summary>
    [Fact]
    public void Class_labels_of_a_sharded_conditional_run_merge_beside_the_samples()
    {
        var dir = TestUtil.TempDir("shard-labels");
        var data = ConditionalTrainingTests.ThreeClassImages(dir);
        var run = Path.Combine(dir, "run");
        Ok(Cli(["train", "--data", $"images:{data}", "--steps", "2", "--out", run, "--quiet", "--threads", "1",
                .. ConditionalTrainingTests.TinyConditionalUNet, "--set", "sample.n=4", "--set", "sample.steps=3"]));
        string[] common = ["sample", "--checkpoint", run, "--sampler", "ddim", "--steps", "3", "--n", "7", "--seed", "3", "--class", "random", "--guidance", "1", "--quiet"];
        string whole = Path.Combine(dir, "whole.npy");
        Ok(Cli([.. common, "--out", whole]));
        string p0 = Path.Combine(dir, "p0.npz"), p1 = Path.Combine(dir, "p1.npz"), merged = Path.Combine(dir, "merged.npy");
        Ok(Cli([.. common, "--shard", "1/2", "--out", p1]));
        Ok(Cli([.. common, "--shard", "0/2", "--batch-size", "2", "--out", p0]));
        var (s1, m1, l1) = SampleParts.ReadWithLabels(p1);
        using (s1) using (l1) Assert.Equal(m1.Count, l1!.shape[0]);
        Ok(Cli("merge", p1, p0, "--out", merged, "--quiet"));
        Assert.True(File.ReadAllBytes(whole).SequenceEqual(File.ReadAllBytes(merged)), "merged samples differ from the unsharded run");
        var expectedLabels = File.ReadAllBytes(SampleRun.LabelsPath(whole));
        Assert.True(expectedLabels.SequenceEqual(File.ReadAllBytes(SampleRun.LabelsPath(merged))), "merged labels differ from the unsharded run's");
        using (var l = Diffusion.Data.Npy.Read(SampleRun.LabelsPath(merged)))
            Assert.All(l.data<long>().ToArray(), c => Assert.InRange(c, 0L, 2L));
        // merged into a part of the whole run (.npz), the labels stay with it
        string mergedPart = Path.Combine(dir, "merged.npz");
        Ok(Cli("merge", p0, p1, "--out", mergedPart, "--quiet"));
        var (ms, mm, ml) = SampleParts.ReadWithLabels(mergedPart);
        using (ms) using (ml)
        {
            Assert.Equal(7, mm.Count);
            using var wl = Diffusion.Data.Npy.Read(SampleRun.LabelsPath(whole));
            Assert.Equal(wl.data<long>().ToArray(), ml!.data<long>().ToArray());
        }

        // a part with labels and one without (same run otherwise) do not join
        var (s0, man0) = SampleParts.Read(p0);
        string bare = Path.Combine(dir, "bare.npz");
        using (s0) SampleParts.Write(bare, s0, man0);
        OneLineError(Cli("merge", bare, p1, "--out", Path.Combine(dir, "x.npy")), "p1.npz has class labels", "bare.npz has none");
        Assert.False(File.Exists(Path.Combine(dir, "x.npy")));
    }
}
