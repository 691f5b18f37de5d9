using System.Text.Json.Nodes;
using Diffusion.Data;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>diffusion eval and diffusion diagnose, run as a user runs them.</summary>
public class EvalCliTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliTests.Run(args);
    private static void AssertOneLineError((int Code, string Out, string Err) r, string contains) => CliTests.AssertOneLineError(r, contains);

    private const string SmallMixtureJson = """{"weights":[0.5,0.3,0.2], "means":[[-1,0.5],[1,1],[0.5,-1.2]], "stds":[0.3,0.2,0.4], "schedule":{"name":"linear","T":1000}}""";

    [Fact]
    public void Eval_scores_samples_in_json_and_text_and_reuses_saved_statistics()
    {
        var dir = TestUtil.TempDir("cli-eval");
        var spec = Path.Combine(dir, "spec.json");
        File.WriteAllText(spec, SmallMixtureJson);
        var samples = Path.Combine(dir, "s.npy");
        var r = Run("sample", "--model", $"gmm:{spec}", "--sampler", "ddim", "--steps", "50", "--n", "600", "--out", samples, "--quiet");
        Assert.True(r.Code == 0, r.Err);

        var stats = Path.Combine(dir, "ref.npz");
        string[] common = ["--kid-subsets", "20", "--kid-subset-size", "300", "--mmd-n", "300", "--reference-n", "2000", "--quiet"];
        r = Run(["eval", "--samples", samples, "--reference", $"gmm:{spec}?n=2000&seed=5", "--format", "json", "--save-reference", stats, .. common]);
        Assert.True(r.Code == 0, r.Err);
        var lines = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        var j = JsonNode.Parse(lines[0])!.AsObject();
        Assert.Equal("raw", (string)j["features"]!);
        Assert.Equal(600, (int)j["n"]!);
        Assert.Equal(2000, (int)j["reference_n"]!);
        double fid = (double)j["fid"]!;
        // Samples of the exact model against its own mixture: every score says "the same distribution".
        Assert.True(fid >= 0 && fid < 0.05, $"fid {fid}");
        Assert.True(Math.Abs((double)j["kid"]!) < 3 * (double)j["kid_std"]! + 1e-3, j.ToJsonString());
        Assert.True((double)j["precision"]! > 0.8 && (double)j["recall"]! > 0.8, j.ToJsonString());
        Assert.Equal(3, (int)j["mixture_modes"]!);
        Assert.True((double)j["mixture_within_3sigma"]! > 0.9);

        // The saved statistics give the same FID without the data; text output names the features and counts.
        r = Run(["eval", "--samples", samples, "--reference", stats, "--metrics", "fid,kid", .. common.Where(c => c != "--reference-n" && c != "2000")]);
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("[raw, n=600 vs 2000]", r.Out);
        var fidLine = r.Out.Split('\n').Single(l => l.StartsWith("fid"));
        Assert.Equal(fid, double.Parse(fidLine.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture), 5);
        Assert.DoesNotContain("precision", r.Out);

        // A statistics file with only mu and sigma (like pytorch-fid's) supports FID only.
        var muSigma = Path.Combine(dir, "mu-sigma.npz");
        using (var mu = zeros(2, dtype: ScalarType.Float64)) using (var sigma = eye(2, dtype: ScalarType.Float64)) Npz.Write(muSigma, [("mu", mu), ("sigma", sigma)]);
        r = Run("eval", "--samples", samples, "--reference", muSigma, "--metrics", "fid", "--features", "raw", "--quiet");
        Assert.True(r.Code == 0, r.Err);
        AssertOneLineError(Run("eval", "--samples", samples, "--reference", muSigma, "--metrics", "fid,kid", "--features", "raw", "--quiet"), "holds only mu and sigma");
    }

    [Fact]
    public void Eval_n_of_a_data_spec_is_a_random_subset_not_the_first_rows()
    {
        // Data sorted by class (like mnist's digits): 500 rows near (−5, 0), then 500 near (5, 0).
        var dir = TestUtil.TempDir("cli-eval-subset");
        var file = Path.Combine(dir, "sorted.npy");
        using (var g = new Generator(3))
        using (var noise = randn([1000, 2], generator: g).mul(0.3))
        using (var centres = cat([full(500, 1, -5.0), full(500, 1, 5.0)], 0))
        using (var x = noise.add(cat([centres, zeros(1000, 1)], 1)).to_type(ScalarType.Float32)) Npy.Write(file, x);

        var r = Run("eval", "--samples", $"npy:{file}", "--n", "200", "--reference", $"npy:{file}", "--metrics", "fid", "--format", "json", "--quiet");
        Assert.True(r.Code == 0, r.Err);
        var j = JsonNode.Parse(r.Out.Trim())!.AsObject();
        Assert.Equal(200, (int)j["n"]!);
        // The first 200 rows would all sit at (−5, 0): a mean shift of 5 alone gives FID ≥ 25.
        Assert.True((double)j["fid"]! < 1.0, j.ToJsonString());
    }

    [Fact]
    public void Eval_errors_are_one_line()
    {
        var dir = TestUtil.TempDir("cli-eval-err");
        var samples = Path.Combine(dir, "s.npy");
        using (var x = randn(10, 2)) Npy.Write(samples, x);
        AssertOneLineError(Run("eval", "--reference", "toy:moons"), "--samples FILE.npy|DIR is required");
        AssertOneLineError(Run("eval", "--samples", samples, "--reference", "toy:moons", "--metrics", "fid,is"), "unknown metric 'is'");
        AssertOneLineError(Run("eval", "--samples", samples, "--reference", "toy:moons", "--format", "xml"), "expected text or json");
        AssertOneLineError(Run("eval", "--samples", Path.Combine(dir, "none.npy"), "--reference", "toy:moons"), "no such file or folder");
        AssertOneLineError(Run("eval", "--samples", samples, "--reference", "toy:moons", "--features", "pixels"), "unknown feature extractor");
        AssertOneLineError(Run("eval", "--samples", samples, "--reference", "toy:moons", "--features", "classifier:toy"), "expected one of classifier:fashion-mnist, classifier:mnist");
        using (var img = zeros(4, 3, 8, 8)) Npy.Write(Path.Combine(dir, "img.npy"), img);
        var psi = Run("eval", "--samples", Path.Combine(dir, "img.npy"), "--reference", $"npy:{Path.Combine(dir, "img.npy")}", "--features", "inception-fid");
        AssertOneLineError(psi, "--inception-weights");
        // A legacy (pre-1.6) torch.save file is read as it is: this small one has only two of pytorch-fid's names.
        var legacyPth = Path.Combine(AppContext.BaseDirectory, "Fixtures", "legacy-inception-names.pth");
        AssertOneLineError(Run("eval", "--samples", Path.Combine(dir, "img.npy"), "--reference", $"npy:{Path.Combine(dir, "img.npy")}", "--features", "inception-fid",
            "--inception-weights", legacyPth), "missing tensor 'Conv2d_1a_3x3.bn.weight'");
        using (var one = randn(1, 2)) Npy.Write(Path.Combine(dir, "one.npy"), one);
        AssertOneLineError(Run("eval", "--samples", Path.Combine(dir, "one.npy"), "--reference", "toy:gmm-grid?n=100"), "need at least two samples");
        using (var three = randn(10, 3)) Npy.Write(Path.Combine(dir, "three.npy"), three);
        AssertOneLineError(Run("eval", "--samples", Path.Combine(dir, "three.npy"), "--reference", "toy:moons?n=100"), "the reference has [2]");
    }

    [Fact]
    public void Diagnose_overlays_a_trained_checkpoint_and_the_exact_model()
    {
        var dir = TestUtil.TempDir("cli-diagnose");
        var spec = Path.Combine(dir, "spec.json");
        File.WriteAllText(spec, SmallMixtureJson);
        var run = Path.Combine(dir, "mlp");
        var r = Run("train", "--data", $"gmm:{spec}?n=4000", "--steps", "40", "--out", run, "--quiet",
                    "--set", "model.hidden=32", "--set", "train.batch-size=64", "--set", "sample.n=16", "--set", "sample.steps=5");
        Assert.True(r.Code == 0, r.Err);

        var outDir = Path.Combine(dir, "lip");
        r = Run("diagnose", "lipschitz", "--checkpoint", run, "--model", $"gmm:{spec}", "--label", "tiny MLP", "--label", "exact",
                "--n", "100", "--grid-points", "8", "--out", outDir);
        Assert.True(r.Code == 0, r.Err);
        var csv = File.ReadAllLines(Path.Combine(outDir, "lipschitz.csv"));
        Assert.Equal("label,t,delta,K,K_se", csv[0]);
        Assert.Contains(csv, l => l.StartsWith("tiny MLP,1,1,"));
        Assert.Contains(csv, l => l.StartsWith("exact,999,1,"));
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "lipschitz.json")))!;
        Assert.Equal(2, json["models"]!.AsArray().Count);
        Assert.True(new FileInfo(Path.Combine(outDir, "lipschitz.png")).Length > 5000);

        // mixture-steps on the checkpoint: its data spec names the mixture, so the scores are known.
        var ms = Path.Combine(dir, "ms");
        r = Run("diagnose", "mixture-steps", "--checkpoint", run, "--n", "200", "--mixture-steps", "50,5", "--out", ms);
        Assert.True(r.Code == 0, r.Err);
        var rows = File.ReadAllLines(Path.Combine(ms, "mixture-steps.csv"));
        Assert.Equal(["label,steps,within_3sigma,modes_covered,modes,log_likelihood", "mlp,50", "mlp,5"], rows.Select(l => string.Join(",", l.Split(',').Take(l.StartsWith("label") ? 6 : 2))));

        AssertOneLineError(Run("diagnose", "--model", $"gmm:{spec}"), "expected one diagnostic name");
        AssertOneLineError(Run("diagnose", "x0-bias"), "give at least one --checkpoint");
        AssertOneLineError(Run("diagnose", "x0-bias", "--model", $"gmm:{spec}", "--model", $"gmm:{spec}"), "two models are labelled");
        AssertOneLineError(Run("diagnose", "x0-bias", "--model", $"gmm:{spec}", "--label", "a", "--label", "b"), "2 --label for 1 models");
        AssertOneLineError(Run("diagnose", "x0-bias", "--model", $"gmm:{spec}", "--delta", "2"), "--delta applies to lipschitz only");
        AssertOneLineError(Run("diagnose", "mixture-steps", "--checkpoint", Path.Combine(dir, "none")), "no such file or run folder");
    }

    [Fact]
    public void Diagnose_mixture_steps_scores_an_image_checkpoint_against_held_out_images()
    {
        var dir = TestUtil.TempDir("cli-diagnose-images");
        var spec = Path.Combine(dir, "spec.json");
        File.WriteAllText(spec, SmallMixtureJson);
        var data = Path.Combine(dir, "data");
        Directory.CreateDirectory(data);
        var rng = new Random(3);
        for (int i = 0; i < 12; i++) DataTests.WritePng(Path.Combine(data, $"{i}.png"), 8, 8, (x, y) => { var v = (byte)rng.Next(256); return (v, v, v); });
        var run = Path.Combine(dir, "unet");
        var r = Run("train", "--data", $"images:{data}", "--steps", "2", "--out", run, "--quiet", "--threads", "1",
            "--set", "data.image-size=8", "--set", "model.channels=8", "--set", "model.channel-mult=[1]", "--set", "model.res-blocks=1",
            "--set", "model.attention-resolutions=[]", "--set", "model.norm-groups=4", "--set", "train.batch-size=4", "--set", "sample.n=4", "--set", "sample.steps=2");
        Assert.True(r.Code == 0, r.Err);

        var outDir = Path.Combine(dir, "ms");
        string[] common = ["--n", "16", "--mixture-steps", "3,2", "--data", $"images:{data}", "--threads", "1"];
        r = Run(["diagnose", "mixture-steps", "--checkpoint", run, "--features", "raw", "--out", outDir, .. common]);
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("raw features of 12 held-out images", r.Err);
        var rows = File.ReadAllLines(Path.Combine(outDir, "mixture-steps.csv"));
        Assert.Equal("label,steps,fid,kid,kid_std,precision,recall,features,n,reference_n", rows[0]);
        Assert.Equal(["unet,3", "unet,2"], rows.Skip(1).Select(l => string.Join(",", l.Split(',').Take(2))));
        Assert.All(rows.Skip(1), l => Assert.True(double.Parse(l.Split(',')[2], System.Globalization.CultureInfo.InvariantCulture) > 0, l));
        Assert.All(rows.Skip(1), l => Assert.EndsWith(",raw,16,12", l));
        Assert.True(new FileInfo(Path.Combine(outDir, "mixture-steps.png")).Length > 5000);

        // Without --features: eval's default for images that are not (Fashion-)MNIST, inception-fid, which needs its weights.
        AssertOneLineError(Run(["diagnose", "mixture-steps", "--checkpoint", run, .. common]), "--features inception-fid: no weights");
        AssertOneLineError(Run(["diagnose", "mixture-steps", "--checkpoint", run, "--features", "pixels", .. common]), "unknown feature extractor");
        AssertOneLineError(Run(["diagnose", "mixture-steps", "--checkpoint", run, "--model", $"gmm:{spec}", "--features", "raw", .. common]), "diagnose them separately");
        AssertOneLineError(Run("diagnose", "mixture-steps", "--model", $"gmm:{spec}", "--features", "raw"), "--features applies to image models");
        AssertOneLineError(Run("diagnose", "x0-bias", "--model", $"gmm:{spec}", "--features", "raw"), "--features applies to mixture-steps only");
    }

    [Fact]
    public void Diagnose_error_propagation_records_its_bandwidth_rule_and_values()
    {
        var dir = TestUtil.TempDir("cli-diagnose-bw");
        var spec = Path.Combine(dir, "spec.json");
        File.WriteAllText(spec, SmallMixtureJson);
        foreach (var (rule, expected) in new[] { ("nearest", "nearest"), ("0.5", "0.5"), ("pooled", "pooled") })
        {
            var outDir = Path.Combine(dir, rule);
            var r = Run("diagnose", "error-propagation", "--model", $"gmm:{spec}", "--n", "100", "--steps", "20", "--grid-points", "4",
                        "--permutations", "20", "--bandwidth", rule, "--out", outDir, "--threads", "1");
            Assert.True(r.Code == 0, r.Err);
            var csv = File.ReadAllLines(Path.Combine(outDir, "error-propagation.csv"));
            Assert.Equal("label,t,mmd2,null_95,p_value,bandwidth_rule,bandwidth", csv[0]);
            Assert.All(csv.Skip(1), l => Assert.Equal(expected, l.Split(',')[5]));
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "error-propagation.json")))!;
            var model = json["models"]![0]!;
            Assert.Equal(expected, (string)model["bandwidth_rule"]!);
            var bws = model["bandwidth"]!.AsArray().Select(v => (double)v!).ToList();
            Assert.Equal(csv.Length - 1, bws.Count);
            if (rule == "0.5") Assert.All(bws, v => Assert.Equal(0.5, v));
            else Assert.All(bws, v => Assert.True(v > 0));
        }
        AssertOneLineError(Run("diagnose", "error-propagation", "--model", $"gmm:{spec}", "--bandwidth", "wide"), "--bandwidth wide: expected nearest, pooled or a positive number");
        AssertOneLineError(Run("diagnose", "error-propagation", "--model", $"gmm:{spec}", "--bandwidth", "0"), "--bandwidth 0: expected nearest, pooled or a positive number");
        AssertOneLineError(Run("diagnose", "x0-bias", "--model", $"gmm:{spec}", "--bandwidth", "nearest"), "--bandwidth applies to error-propagation only");
    }
}
