using System.Text.Json.Nodes;
using Diffusion.Metrics;

namespace Diffusion.Tests;

/// <summary>eval --shard k/S --save-partial and eval --merge: the merged scores are those of one process.</summary>
public class ShardEvalTests
{
    private static (int Code, string Out, string Err) Cli(params string[] args) => FuzzTests.RunInProcess(args);
    private static void Ok((int Code, string Out, string Err) r) => Assert.True(r.Code == 0, r.Err);

    [Fact]
    public void Merged_partial_evaluations_equal_the_single_process_evaluation()
    {
        var dir = TestUtil.TempDir("shard-eval");
        string spec = ShardCliTests.MixtureSpec(dir);
        string[] reference = ["--reference", "gmm:" + spec, "--reference-n", "400", "--kid-subsets", "10", "--kid-subset-size", "20", "--mmd-n", "40", "--seed", "3"];
        // Samples drawn in three shards, merged.
        var parts = new List<string>();
        for (int k = 0; k < 3; k++)
        {
            string part = Path.Combine(dir, $"s{k}.npz");
            Ok(Cli("sample", "--model", "gmm:" + spec, "--sampler", "ddpm", "--steps", "30", "--n", "50", "--seed", "4", "--shard", $"{k}/3", "--out", part, "--quiet"));
            parts.Add(part);
        }
        string all = Path.Combine(dir, "all.npy");
        Ok(Cli(["merge", .. parts, "--out", all, "--quiet"]));

        var one = Cli(["eval", "--samples", all, .. reference, "--format", "json", "--quiet"]);
        Ok(one);
        var expected = JsonNode.Parse(one.Out)!.AsObject();

        void AssertSame(string what, string json)
        {
            var got = JsonNode.Parse(json)!.AsObject();
            Assert.Equal(expected.Select(kv => kv.Key).Order(), got.Select(kv => kv.Key).Order());
            foreach (var (key, value) in expected)
            {
                if (value is JsonValue v && v.TryGetValue<double>(out double e))
                {
                    double g = got[key]!.GetValue<double>();
                    double tol = key == "fid" ? 1e-9 * Math.Max(1, Math.Abs(e)) : 0;   // FID from merged sums: rounding only
                    Assert.True(Math.Abs(g - e) <= tol, $"{what}: {key} = {g:R}, one process {e:R}");
                }
                else Assert.Equal(value!.ToJsonString(), got[key]!.ToJsonString());
            }
        }

        foreach (int shards in new[] { 1, 2, 3 })
        {
            var partials = new List<string>();
            for (int k = 0; k < shards; k++)
            {
                string p = Path.Combine(dir, $"e{k}of{shards}.npz");
                Ok(Cli(["eval", "--samples", all, "--shard", $"{k}/{shards}", "--save-partial", p, .. reference, "--quiet"]));
                partials.Add(p);
            }
            partials.Reverse();
            var merged = Cli(["eval", "--merge", .. partials, .. reference, "--format", "json", "--quiet"]);
            Ok(merged);
            AssertSame($"S = {shards}", merged.Out);
        }

        // Partials straight from the sample parts (no merged sample file needed).
        var fromParts = parts.Select((p, k) => { string e = Path.Combine(dir, $"fp{k}.npz"); Ok(Cli(["eval", "--samples", p, "--save-partial", e, .. reference, "--quiet"])); return e; }).ToList();
        var viaParts = Cli(["eval", "--merge", .. fromParts, .. reference, "--format", "json", "--quiet"]);
        Ok(viaParts);
        AssertSame("from sample parts", viaParts.Out);

        // Refusals: another reference, rows missing, rows overlapping, another extractor.
        var r = Cli(["eval", "--merge", .. fromParts, "--reference", "gmm:" + spec, "--reference-n", "300", "--format", "json", "--quiet"]);
        Assert.Equal(1, r.Code);
        Assert.Matches(@"^error: --merge: partial \S+fp0\.npz: computed against reference [^\n]*\n$", r.Err);
        r = Cli(["eval", "--merge", fromParts[0], fromParts[2], .. reference, "--quiet"]);
        Assert.Equal("error: --merge: rows 16…32 of N = 50 are missing (no partial holds them)\n", r.Err);
        r = Cli(["eval", "--merge", fromParts[0], Path.Combine(dir, "e0of2.npz"), Path.Combine(dir, "e1of2.npz"), .. reference, "--quiet"]);
        Assert.Contains("overlap", r.Err);
        Assert.Equal(1, r.Code);
        var ex = Assert.Throws<UserError>(() => EvalPartials.Merge(fromParts, "classifier:mnist sha256:00", "x"));
        Assert.Contains("fp0.npz: computed with features raw, not classifier:mnist", ex.Message);
        r = Cli(["eval", "--samples", all, "--shard", "0/2", .. reference]);
        Assert.Equal(2, r.Code);
        Assert.Contains("--shard needs --save-partial", r.Err);
    }
}
