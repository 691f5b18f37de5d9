using Diffusion.Config;
using Diffusion.Data;
using Diffusion.Models;
using Diffusion.Sampling;
using Diffusion.Schedules;
using Diffusion.Training;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>Class-conditional training: composes with every remedy, learns its classes, round-trips its classes through checkpoints and the CLI.</summary>
public class ConditionalTrainingTests
{
    private static string MixtureSpec(string dir, double sep = 2.0)
    {
        // two components far apart with equal weights: class 0 at (−sep, 0), class 1 at (+sep, 0)
        string p = Path.Combine(dir, "two.json");
        string m = sep.ToString(System.Globalization.CultureInfo.InvariantCulture);
        File.WriteAllText(p, "{\"weights\":[1,1],\"means\":[[-" + m + ",0],[" + m + ",0]],\"stds\":[0.2,0.2],\"schedule\":{\"name\":\"linear\",\"T\":1000}}");
        return $"gmm:{p}?n=4000";
    }

    private static RunConfig Conditional(string spec, int steps)
    {
        var cfg = ConfigLoader.FromTree(ConfigLoader.EmbeddedTree("toy"));
        cfg.Data.Spec = spec;
        cfg.Model.Hidden = 64; cfg.Model.Blocks = 2; cfg.Model.Dropout = 0;
        cfg.Model.NumClasses = 2;
        cfg.Train.Steps = steps; cfg.Train.BatchSize = 64; cfg.Train.WarmupSteps = 5; cfg.Train.LogEvery = 5; cfg.Train.CheckpointEvery = 1000;
        return cfg;
    }

    [Theory]
    [InlineData("baseline")]
    [InlineData("input-perturbation")]
    [InlineData("debiased")]
    [InlineData("min-snr")]
    [InlineData("time-sharing")]
    [InlineData("consistency")]
    [InlineData("smd")]
    [InlineData("all")]
    public void A_conditional_run_trains_with_each_remedy_and_its_loss_is_finite(string remedy)
    {
        var cfg = Conditional(MixtureSpec(TestUtil.TempDir("cond-mix")), 5);
        if (remedy is "input-perturbation" or "all") cfg.Perturbation.Gamma = 0.1;
        if (remedy == "debiased" || remedy == "all") cfg.Loss.Weighting = "debiased";
        if (remedy == "min-snr") cfg.Loss.Weighting = "min-snr";
        if (remedy is "time-sharing" or "all") cfg.TimeSharing.Intervals = 5;
        if (remedy is "consistency" or "all") cfg.Consistency.Weight = 1;
        if (remedy is "smd" or "all") cfg.Smd.Enabled = true;
        cfg.Validate();
        var losses = new List<double>();
        using (var tr = new Trainer(cfg, TestUtil.TempDir("cond-" + remedy), resume: false))
        {
            tr.OnStepLoss = (_, l) => losses.Add(l);
            tr.Run();
            Assert.Equal(2, tr.Model.NumClasses);
        }
        Assert.Equal(5, losses.Count);
        Assert.All(losses, l => Assert.True(double.IsFinite(l), $"{remedy}: loss {l}"));
    }

    /// <summary>A conditional network that records the times and labels it is asked with.</summary>
    private sealed class Recorder : IDenoiser
    {
        public readonly List<(double T, long[] Labels)> Seen = [];
        public Prediction Prediction => Prediction.Epsilon;
        public int Classes => 3;
        public Tensor Predict(Tensor x, TimeStep step) => Predict(x, step, null);
        public Tensor Predict(Tensor x, TimeStep step, Tensor? labels)
        {
            Seen.Add((step.First, labels?.data<long>().ToArray() ?? []));
            return zeros_like(x);
        }
    }

    [Fact]
    public void Time_sharing_and_guidance_tell_the_network_both_f_of_t_and_the_class()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Linear(1000);
        var rec = new Recorder();
        var sharing = new TimeSharing(5, 100);
        var guided = new GuidedDenoiser(DenoiserStack.Build(rec, sharing), 2.0) { Labels = tensor(new long[] { 2, 0 }) };
        var x = zeros(2, 2);
        guided.Predict(x, TimeStep.Uniform(37, 0.9, Math.Sqrt(1 - 0.81), x));
        Assert.Single(rec.Seen);
        Assert.Equal(20.0, rec.Seen[0].T);                     // f(37) = 20 (intervals of 20 below 100)
        Assert.Equal(new long[] { 2, 0, 3, 3 }, rec.Seen[0].Labels); // conditional rows, then the null class, in one pass
    }

    [Fact]
    public void The_class_reaches_the_smd_backbone_and_the_input_perturbed_loss()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var cfg = Conditional("toy:moons", 1);
        cfg.Smd.Enabled = true;
        var net = ModelFactory.Create(cfg, [2]);
        Assert.Equal(2, net.NumClasses);
        var x = randn(4, 2, generator: new Generator(1));
        var t = full(4, 300.0);
        var eta = randn(4, 2, generator: new Generator(2));
        // with random weights, two classes give two outputs for the same (x, t, η)
        using (no_grad()) foreach (var p in net.parameters()) p.normal_(0, 0.3); // at initialisation the residual blocks are zero: the class cannot show yet
        var a = net.ForwardWithNoise(x, t, eta, tensor(new long[] { 0, 0, 0, 0 }));
        var b = net.ForwardWithNoise(x, t, eta, tensor(new long[] { 1, 1, 1, 1 }));
        var n = net.ForwardWithNoise(x, t, eta, null);
        var nullRows = net.ForwardWithNoise(x, t, eta, tensor(new long[] { 2, 2, 2, 2 }));
        Assert.False(a.allclose(b, rtol: 0, atol: 1e-6));
        Assert.True(n.allclose(nullRows, rtol: 0, atol: 0)); // no labels = the null class
        // the loss with input perturbation sends gradient into the class embedding
        var objective = DiffusionObjective.From(cfg, cfg.Schedule.Build());
        var d = DenoiserStack.ForNetwork(cfg, net, new Generator(5), ownsNoise: true);
        cfg.Perturbation.Gamma = 0.1;
        var ip = DiffusionObjective.From(cfg, cfg.Schedule.Build());
        var loss = ip.Loss(d, randn(16, 2, generator: new Generator(6)), new Generator(7), null, randint(0, 2, [16], dtype: ScalarType.Int64, generator: new Generator(8)));
        loss.backward();
        var emb = net.named_parameters().Single(p => p.name.EndsWith("class_embedding.weight"));
        Assert.True(emb.parameter.grad is not null && emb.parameter.grad.abs().sum().item<float>() > 0);
        Assert.Equal(0.1, objective.LabelDropout);
    }

    [Fact]
    public void A_conditional_model_learns_its_classes_and_guidance_sharpens_them()
    {
        var dir = TestUtil.TempDir("cond-learn");
        var cfg = Conditional(MixtureSpec(dir), 400);
        cfg.Train.BatchSize = 128;
        cfg.Train.Lr = 2e-3;
        cfg.Ema.Decay = 0.98;
        cfg.Validate();
        using var tr = new Trainer(cfg, Path.Combine(dir, "run"), resume: false);
        tr.Run();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var sampler = new DdimSampler(tr.Schedule, Respacing.Timesteps("uniform", 1000, 50), 0.0, false);
        foreach (double w in new[] { 0.0, 2.0 })
        {
            var gen = new Generator(1);
            var xT = randn([400, 2], generator: gen);
            var labels = tensor(Enumerable.Range(0, 400).Select(i => (long)(i / 200)).ToArray());
            var guided = new GuidedDenoiser(DenoiserStack.ForSampling(tr.Config, tr.EmaModel, 0), w);
            var x = SampleRun.Draw(sampler, guided, xT, gen, 400, labels: labels);
            // the fraction of each class's samples on its own side (x < 0 for class 0); an unconditional model gives ½
            double own0 = (x.narrow(0, 0, 200)[.., 0] < 0).to_type(ScalarType.Float64).mean().item<double>();
            double own1 = (x.narrow(0, 200, 200)[.., 0] > 0).to_type(ScalarType.Float64).mean().item<double>();
            Assert.True(own0 > 0.9 && own1 > 0.9, $"w = {w}: class 0 on its side {own0:F3}, class 1 {own1:F3}");
        }
    }

    [Fact]
    public void A_checkpoint_round_trips_its_classes_and_the_cli_samples_by_class()
    {
        var dir = TestUtil.TempDir("cond-ckpt");
        var data = ThreeClassImages(dir);
        var run = Path.Combine(dir, "run");
        var r = FuzzTests.RunInProcess(["train", "--data", $"images:{data}", "--steps", "2", "--out", run, "--quiet", "--threads", "1",
            .. TinyConditionalUNet, "--set", "sample.n=6", "--set", "sample.steps=3"]);
        Assert.True(r.Code == 0, r.Err);
        using (var m = TrainedModel.Load(run))
        {
            Assert.Equal(3, m.Config.Model.NumClasses);
            Assert.Equal(["ant", "moth", "zebra"], m.Config.Model.ClassNames!);
            Assert.Equal(3, m.Network.NumClasses);
            Assert.Equal(0.1, m.Config.Train.LabelDropoutFor(m.Config.Model));
        }
        var header = Checkpoint.ReadHeader(Path.Combine(run, Checkpoint.FileName));
        Assert.Equal(3, header.Config["model"]!["num-classes"]!.GetValue<int>());

        string outNpy = Path.Combine(dir, "s.npy");
        r = FuzzTests.RunInProcess(["sample", "--checkpoint", run, "--out", outNpy, "--n", "6", "--class", "all", "--guidance", "1.5", "--sampler", "ddim", "--steps", "3", "--quiet"]);
        Assert.True(r.Code == 0, r.Err);
        using (var l = Npy.Read(SampleRun.LabelsPath(outNpy))) Assert.Equal(new long[] { 0, 0, 1, 1, 2, 2 }, l.data<long>().ToArray());
        using (var ds = DataSources.Load(new DataConfig { Spec = $"npy:{outNpy}?labels={SampleRun.LabelsPath(outNpy)}" })) Assert.Equal(3, ds.ClassCount);
        r = FuzzTests.RunInProcess(["sample", "--checkpoint", run, "--out", outNpy, "--n", "2", "--class", "moth", "--steps", "3", "--quiet"]);
        Assert.True(r.Code == 0, r.Err);
        using (var l = Npy.Read(SampleRun.LabelsPath(outNpy))) Assert.Equal(new long[] { 1, 1 }, l.data<long>().ToArray());
        r = FuzzTests.RunInProcess(["sample", "--checkpoint", run, "--out", Path.Combine(dir, "grid.png"), "--n", "6", "--class", "all", "--steps", "3", "--quiet"]);
        Assert.True(r.Code == 0, r.Err);
        // sample.guidance, saved with the run, is sample's default weight: the same bits as --guidance given, not those of w = 0
        var guidedRun = Path.Combine(dir, "guided");
        r = FuzzTests.RunInProcess(["train", "--data", $"images:{data}", "--steps", "30", "--out", guidedRun, "--quiet", "--threads", "1",
            .. TinyConditionalUNet, "--set", "sample.n=6", "--set", "sample.steps=3", "--set", "sample.guidance=2.5"]);
        Assert.True(r.Code == 0, r.Err);
        float[] Draw(params string[] extra)
        {
            var path = Path.Combine(dir, "g.npy");
            var rr = FuzzTests.RunInProcess(["sample", "--checkpoint", guidedRun, "--out", path, "--n", "6", "--class", "all", "--sampler", "ddim", "--steps", "3", "--no-clip", "--quiet", .. extra]);
            Assert.True(rr.Code == 0, rr.Err);
            using var t = Npy.Read(path);
            return t.data<float>().ToArray();
        }
        var byDefault = Draw();
        Assert.Equal(Draw("--guidance", "2.5"), byDefault);
        Assert.NotEqual(Draw("--guidance", "0"), byDefault);
        AssertErrorLine(FuzzTests.RunInProcess(["train", "--data", "toy:moons?n=64", "--steps", "1", "--out", Path.Combine(dir, "y"), "--quiet", "--set", "sample.guidance=1"]),
            "sample.guidance: applies to a class-conditional model; set model.num-classes too");

        CliTests.AssertOneLineError(FuzzTests.RunInProcess(["sample", "--checkpoint", run, "--out", outNpy, "--class", "12", "--steps", "3"]),
            "--class 12: the model has 3 classes; expected 0 … 2 or a name (ant, moth, zebra), all, random or none");
        CliTests.AssertOneLineError(FuzzTests.RunInProcess(["sample", "--checkpoint", run, "--out", outNpy, "--guidance", "-1", "--steps", "3"]), "--guidance -1: expected a weight w ≥ 0");
        // an unconditional model refuses --guidance and --class
        var plain = Path.Combine(dir, "plain");
        r = FuzzTests.RunInProcess(["train", "--data", "toy:moons?n=64", "--steps", "1", "--out", plain, "--quiet", "--threads", "1", "--set", "model.hidden=8", "--set", "train.batch-size=8", "--set", "sample.n=4", "--set", "sample.steps=2"]);
        Assert.True(r.Code == 0, r.Err);
        CliTests.AssertOneLineError(FuzzTests.RunInProcess(["sample", "--checkpoint", plain, "--out", outNpy, "--guidance", "3"]), $"--guidance applies to a class-conditional model; {plain} has model.num-classes = 0");
        CliTests.AssertOneLineError(FuzzTests.RunInProcess(["sample", "--checkpoint", plain, "--out", outNpy, "--class", "1"]), "--class applies to a class-conditional model");
        // training a conditional model on unlabelled data, or with too few classes, is one error line naming the data
        AssertErrorLine(FuzzTests.RunInProcess(["train", "--data", "toy:moons?n=64", "--steps", "1", "--out", Path.Combine(dir, "x"), "--quiet", "--set", "model.num-classes=2"]),
            "model.num-classes = 2: the data toy:moons?n=64 has no labels");
        AssertErrorLine(FuzzTests.RunInProcess(["train", "--data", $"images:{data}", "--steps", "1", "--out", Path.Combine(dir, "y"), "--quiet", "--set", "data.image-size=8", "--set", "model.num-classes=10"]),
            "has 3 classes (ant, moth, zebra); set model.num-classes=3");
        AssertErrorLine(FuzzTests.RunInProcess(["train", "--data", "toy:moons?n=64", "--steps", "1", "--out", Path.Combine(dir, "z"), "--quiet", "--set", "train.label-dropout=0.2"]),
            "train.label-dropout: applies to a class-conditional model");
    }

    /// <summary>A labelled image folder under <paramref name="dir"/>: classes ant, moth, zebra, four flat grey 8×8 images each (the returned path, for images:PATH).</summary>
    internal static string ThreeClassImages(string dir)
    {
        var data = Path.Combine(dir, "data");
        foreach (var (cls, v) in new[] { ("zebra", 220), ("ant", 20), ("moth", 120) })
        {
            Directory.CreateDirectory(Path.Combine(data, cls));
            for (int i = 0; i < 4; i++) DataTests.WritePng(Path.Combine(data, cls, $"{i}.png"), 8, 8, (x, y) => ((byte)v, (byte)v, (byte)v));
        }
        return data;
    }

    /// <summary>train --set arguments of a tiny class-conditional UNet for <see cref="ThreeClassImages"/>.</summary>
    internal static readonly string[] TinyConditionalUNet =
    [
        "--set", "data.image-size=8", "--set", "model.num-classes=3", "--set", "model.channels=8", "--set", "model.channel-mult=[1]",
        "--set", "model.res-blocks=1", "--set", "model.attention-resolutions=[]", "--set", "model.norm-groups=4", "--set", "train.batch-size=4",
    ];

    private static void AssertErrorLine((int Code, string Out, string Err) r, string contains)
    {
        Assert.Equal(1, r.Code);
        CliTests.AssertOneLineError(r, contains);
    }

    [Fact]
    public void The_exact_mixture_samples_a_component_from_the_cli()
    {
        var dir = TestUtil.TempDir("cond-gmm");
        string spec = MixtureSpec(dir, 3.0).Split('?')[0];
        string outNpy = Path.Combine(dir, "c1.npy");
        var means = new List<double>();
        foreach (var w in new[] { "0", "3" })
        {
            var r = FuzzTests.RunInProcess(["sample", "--model", spec, "--out", outNpy, "--n", "400", "--class", "1", "--guidance", w, "--steps", "50", "--dtype", "float64", "--quiet"]);
            Assert.True(r.Code == 0, r.Err);
            using var x = Npy.Read(outNpy);
            means.Add(x[.., 0].mean().item<double>());
        }
        Assert.Equal(3.0, means[0], 5 * 0.2 / Math.Sqrt(400));   // class 1 alone: the component's mean (std 0.2)
        Assert.True(means[1] > means[0] + 0.02, $"guidance pushes away from the other class: mean {means[1]:F3} vs {means[0]:F3}");
        CliTests.AssertOneLineError(FuzzTests.RunInProcess(["sample", "--model", spec, "--out", outNpy, "--guidance", "1"]), "(give --class to sample the mixture's components)");
    }
}
