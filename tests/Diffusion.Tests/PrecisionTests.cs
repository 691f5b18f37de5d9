using System.Text.Json.Nodes;
using Diffusion.Config;
using Diffusion.Data;
using Diffusion.Models;
using Diffusion.Training;
using static TorchSharp.torch;

namespace Diffusion.Tests;

public class PrecisionTests
{
    private static RunConfig ImageConfig(int steps, string precision)
    {
        var cfg = ConfigLoader.FromTree(ConfigLoader.EmbeddedTree("image28"), "image28");
        cfg.Model.Channels = 32; cfg.Model.ChannelMult = [1, 2]; cfg.Model.ResBlocks = 1; cfg.Model.AttentionResolutions = [8];
        cfg.Model.NormGroups = 8; cfg.Model.Dropout = 0.1;
        cfg.Train.Steps = steps; cfg.Train.BatchSize = 8; cfg.Train.CheckpointEvery = 1000; cfg.Train.LogEvery = 1;
        cfg.Train.WarmupSteps = 2; cfg.Train.Precision = precision;
        cfg.Sample.N = 4; cfg.Sample.Steps = 3;
        return cfg;
    }

    private static Dataset Images()
    {
        using var g = new TorchSharp.torch.Generator(5);
        return new Dataset("synthetic images", rand([48, 1, 16, 16], generator: g) * 2 - 1);
    }

    private static List<double> Train(RunConfig cfg, string dir, bool resume, Dataset data)
    {
        var losses = new List<double>();
        using var t = new Trainer(cfg, dir, resume, data);
        t.OnStepLoss = (_, l) => losses.Add(l);
        t.Run();
        return losses;
    }

    [Fact]
    public void A_bf16_mixed_run_resumes_exactly_and_differs_from_float32()
    {
        using var data = Images();
        var full = Train(ImageConfig(10, "bf16-mixed"), TestUtil.TempDir("bf16-a"), false, data);
        var dirB = TestUtil.TempDir("bf16-b");
        var first = Train(ImageConfig(4, "bf16-mixed"), dirB, false, data);
        var second = Train(ImageConfig(10, "bf16-mixed"), dirB, true, data);
        Assert.Equal(full, first.Concat(second));
        var f32 = Train(ImageConfig(10, "float32"), TestUtil.TempDir("f32"), false, data);
        Assert.NotEqual(full, f32);
        // Same weights and data: the first losses agree to bfloat16's precision.
        Assert.True(Math.Abs(full[0] - f32[0]) < 0.02 * f32[0], $"first loss bf16 {full[0]} vs float32 {f32[0]}");
        using var loaded = TrainedModel.Load(dirB);
        Assert.Equal("bf16-mixed", loaded.Config.Train.Precision);
        Assert.Equal(Precision.Bf16Mixed, loaded.Network.Precision);
    }

    [Fact]
    public void Auto_is_saved_as_what_it_chose_per_model_type()
    {
        using var data = Images();
        var dir = TestUtil.TempDir("auto-unet");
        Train(ImageConfig(1, "auto"), dir, false, data);
        using var unet = TrainedModel.Load(dir);
        string expected = Precisions.CpuBf16 is null ? "float32" : "bf16-mixed";
        Assert.Equal(expected, unet.Config.Train.Precision);

        var toy = ConfigLoader.FromTree(ConfigLoader.EmbeddedTree("toy"), "toy");
        toy.Data.Spec = "toy:moons?n=500"; toy.Train.Steps = 1; toy.Train.BatchSize = 16; toy.Sample.N = 4; toy.Sample.Steps = 2;
        Assert.Equal("auto", toy.Train.Precision);
        var dirMlp = TestUtil.TempDir("auto-mlp");
        using (var t = new Trainer(toy, dirMlp, resume: false)) t.Run();
        using var mlp = TrainedModel.Load(dirMlp);
        Assert.Equal("float32", mlp.Config.Train.Precision);
    }

    [Fact]
    public void A_checkpoint_from_before_precision_existed_is_float32()
    {
        var tree = ConfigLoader.ToTree(ImageConfig(1, "auto"));
        ((JsonObject)tree["train"]!).Remove("precision");
        var header = new CheckpointHeader { Config = tree };
        Assert.Equal("float32", header.RunConfig("old checkpoint").Train.Precision);
    }

    [Fact]
    public void A_bad_precision_is_a_one_line_error_naming_the_key()
    {
        var tree = ConfigLoader.EmbeddedTree("demo");
        ConfigLoader.ApplySet(tree, "train.precision=fp16");
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.FromTree(tree, "demo"));
        Assert.Contains("train.precision", e.Message);
        Assert.Contains("bf16-mixed", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Fact]
    public void Bf16_mixed_mlp_trains_and_returns_float32()
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        using var net = new MlpDenoiser(2, 64, 2, 32);
        net.Precision = Precision.Bf16Mixed;
        using (no_grad()) foreach (var p in net.parameters()) p.add_(randn_like(p) * 0.05);
        using var d = new NetworkDenoiser(net, Prediction.Epsilon);
        var x = randn(16, 2);
        var step = new Schedules.TimeStep(full(16, 100.0, dtype: ScalarType.Float64), tensor(0.9f), tensor(0.4f));
        var y = d.Predict(x, step);
        Assert.Equal(ScalarType.Float32, y.dtype);
        y.square().mean().backward();
        Assert.All(net.parameters(), p => Assert.Equal(ScalarType.Float32, p.grad?.dtype ?? ScalarType.Float32));
        net.Precision = Precision.Float32;
        var y32 = d.Predict(x, step);
        double rel = (y - y32).norm().item<float>() / y32.norm().item<float>();
        Assert.InRange(rel, 1e-6, 0.03);
    }
}
