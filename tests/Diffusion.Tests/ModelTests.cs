using TorchSharp;
using Diffusion.Models;
using static TorchSharp.torch;

namespace Diffusion.Tests;

public class ModelTests
{
    [Theory]
    [InlineData(1, 28, new[] { 1, 2, 2 }, new[] { 14 })]
    [InlineData(3, 32, new[] { 1, 2, 2, 2 }, new[] { 16 })]
    [InlineData(2, 28, new[] { 1, 2, 2, 2 }, new[] { 7 })]   // 28 → 14 → 7 → 4 and back
    [InlineData(4, 16, new[] { 1, 2 }, new int[0])]
    public void Unet_maps_images_to_images_at_real_valued_times(int channels, int side, int[] mult, int[] attn)
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        using var net = new UNet(channels, side, channels: 32, channelMult: mult, resBlocks: 1, attentionResolutions: attn, headChannels: 16, dropout: 0.1, normGroups: 8);
        var x = randn(3, channels, side, side);
        var y = net.call(x, tensor(new float[] { 0f, 17.25f, 999f }));
        Assert.Equal(x.shape, y.shape);
        Assert.True(y.isfinite().all().item<bool>());
        // Zero-initialised output layer: an untrained UNet predicts 0; after one parameter change it depends on t.
        Assert.Equal(0f, y.abs().max().item<float>());
        using (no_grad()) foreach (var p in net.parameters()) p.add_(randn_like(p) * 0.02);
        net.eval();
        var a = net.call(x, tensor(new float[] { 10f, 10f, 10f }));
        var b = net.call(x, tensor(new float[] { 10.5f, 10.5f, 10.5f }));
        Assert.True((a - b).abs().max().item<float>() > 0, "a real-valued time must change the output");
    }

    [Fact]
    public void Mlp_input_fourier_features_are_cos_and_sin_of_the_scaled_coordinates()
    {
        using var scope = NewDisposeScope();
        var x = tensor(new float[,] { { 0.5f, -1.25f }, { 1.5f, 0.02f } });
        var f = MlpDenoiser.FourierFeatures(x, 8, 25.0);
        Assert.Equal(new long[] { 2, 16 }, f.shape);
        var got = f.data<float>().ToArray();
        for (int n = 0; n < 2; n++)
            for (int d = 0; d < 2; d++)
                for (int k = 0; k < 4; k++)
                {
                    double arg = 25.0 * x[n, d].item<float>() * Math.Pow(10000, -k / 4.0);
                    Assert.Equal(Math.Cos(arg), got[n * 16 + d * 8 + k], 3);
                    Assert.Equal(Math.Sin(arg), got[n * 16 + d * 8 + 4 + k], 3);
                }
        // The MLP built from a config with the key takes them in: its input layer sees 2 × 8 features.
        var cfg = Diffusion.Config.ConfigLoader.FromTree(Diffusion.Config.ConfigLoader.EmbeddedTree("toy"), "test");
        cfg.Model.InputEmbedDim = 8;
        using var net = ModelFactory.Create(cfg.Model, [2]);
        Assert.Contains(net.named_parameters(), p => p.name == "inProj.weight" && p.parameter.shape[1] == 16);
        var y = net.call(x, tensor(new float[] { 3f, 700f }));
        Assert.Equal(x.shape, y.shape);
        // Off (the default), the config is written without the keys, as before they existed.
        cfg.Model.InputEmbedDim = 0;
        Assert.DoesNotContain("input-embed", System.Text.Json.JsonSerializer.Serialize(cfg, Diffusion.Config.ConfigLoader.JsonOptions));
    }

    [Fact]
    public void Unet_gradients_match_a_float64_computation()
    {
        // Guards against the libtorch CPU convolution defect that SafeConv2d works around: the input
        // gradient through the whole UNet (1 output channel) must equal the float64 one.
        using var scope = NewDisposeScope();
        manual_seed(1);
        using var net = new UNet(1, 28, channels: 32, channelMult: [1, 2, 2], resBlocks: 1, attentionResolutions: [7], headChannels: 32, dropout: 0, normGroups: 8);
        using (no_grad()) foreach (var p in net.parameters()) p.add_(randn_like(p) * 0.05);
        var x = randn(4, 1, 28, 28);
        var t = tensor(new float[] { 3, 300, 600, 900 });
        var w = randn(4, 1, 28, 28);
        for (int round = 0; round < 3; round++)
        {
            var x32 = x.clone().requires_grad_(true);
            (net.call(x32, t) * w).sum().backward();
            net.zero_grad();
            net.to(ScalarType.Float64);
            var x64 = x.to_type(ScalarType.Float64).requires_grad_(true);
            (net.call(x64, t.to_type(ScalarType.Float64)) * w.to_type(ScalarType.Float64)).sum().backward();
            net.zero_grad();
            net.to(ScalarType.Float32);
            double err = (x32.grad!.to_type(ScalarType.Float64) - x64.grad!).abs().max().item<double>() / x64.grad!.abs().max().item<double>();
            Assert.True(err < 1e-3, $"round {round}: relative error of the input gradient {err:G3}");
        }
    }

    [Theory]
    [InlineData(32, 1, 3, 1)]
    [InlineData(32, 3, 3, 1)]
    [InlineData(64, 8, 3, 1)]
    [InlineData(48, 32, 3, 2)]
    [InlineData(1, 32, 3, 1)]
    [InlineData(32, 96, 1, 1)]
    [InlineData(24, 32, 3, 1)]
    [InlineData(40, 64, 3, 1)]
    [InlineData(100, 20, 1, 1)]
    public void Safe_conv2d_gradients_equal_float64(int inC, int outC, int k, int stride)
    {
        using var scope = NewDisposeScope();
        var conv = Layers.Conv2d(inC, outC, k, stride, k / 2);
        for (int round = 0; round < 3; round++)
        {
            var a = randn(16, inC, 14, 14, requires_grad: true);
            var y = conv.call(a);
            var g = randn(y.shape);
            (y * g).sum().backward();
            var a64 = a.detach().to_type(ScalarType.Float64).requires_grad_(true);
            var w64 = conv.weight.detach().to_type(ScalarType.Float64).requires_grad_(true);
            var b64 = conv.bias.detach().to_type(ScalarType.Float64).requires_grad_(true);
            var y64 = nn.functional.conv2d(a64, w64, b64, [stride, stride], [k / 2, k / 2]);
            (y64 * g.to_type(ScalarType.Float64)).sum().backward();
            static double Rel(Tensor x, Tensor r) => (x.to_type(ScalarType.Float64) - r).abs().max().item<double>() / (r.abs().max().item<double>() + 1e-12);
            Assert.True(Rel(y.detach(), y64.detach()) < 1e-5, "forward");
            using (no_grad())
            using (var yNoGrad = conv.call(a)) Assert.True(Rel(yNoGrad, y64.detach()) < 1e-5, $"forward without gradients off by {Rel(yNoGrad, y64.detach()):G3}");
            Assert.True(Rel(a.grad!, a64.grad!) < 1e-5, $"input gradient off by {Rel(a.grad!, a64.grad!):G3}");
            Assert.True(Rel(conv.weight.grad!, w64.grad!) < 1e-5, "weight gradient");
            Assert.True(Rel(conv.bias.grad!, b64.grad!) < 1e-5, "bias gradient");
            conv.zero_grad();
        }
    }

    [Theory]
    [InlineData(32, 1, 3, 1)]
    [InlineData(32, 3, 3, 1)]
    [InlineData(64, 8, 3, 1)]
    [InlineData(64, 24, 3, 1)]
    [InlineData(48, 32, 3, 2)]
    [InlineData(1, 32, 3, 1)]
    [InlineData(32, 96, 1, 1)]
    [InlineData(3, 32, 3, 1)]
    [InlineData(8, 32, 3, 1)]
    [InlineData(16, 32, 3, 1)]
    [InlineData(24, 64, 3, 1)]
    [InlineData(40, 64, 3, 1)]
    [InlineData(96, 8, 3, 1)]
    [InlineData(16, 16, 3, 2)]
    [InlineData(48, 64, 3, 1)]
    [InlineData(80, 64, 3, 1)]
    [InlineData(64, 3, 3, 1)]
    [InlineData(100, 20, 1, 1)]
    [InlineData(30, 32, 3, 2)]
    public void Safe_conv2d_gradients_in_bf16_mixed_equal_float64(int inC, int outC, int k, int stride)
    {
        // The same comparison in bf16-mixed. The float64 reference uses the bfloat16-rounded input, weights and
        // output gradient, so what remains is accumulation rounding (float32 accumulators: ~1e-3 relative), far
        // below the 20–40 % of the oneDNN defect.
        using var scope = NewDisposeScope();
        var conv = Layers.Conv2d(inC, outC, k, stride, k / 2);
        for (int round = 0; round < 3; round++)
        {
            var a = randn(16, inC, 14, 14, requires_grad: true);
            Tensor y;
            using (Autocast.Enter(Precision.Bf16Mixed)) y = conv.call(a);
            Assert.Equal(ScalarType.BFloat16, y.dtype);
            var g = randn(y.shape).to_type(ScalarType.BFloat16);
            (y * g).sum().backward();
            Tensor yNoGrad;
            using (no_grad())
            using (Autocast.Enter(Precision.Bf16Mixed)) yNoGrad = conv.call(a);
            static Tensor R(Tensor t) => t.detach().to_type(ScalarType.BFloat16).to_type(ScalarType.Float64);
            var a64 = R(a).requires_grad_(true);
            var w64 = R(conv.weight).requires_grad_(true);
            var b64 = R(conv.bias).requires_grad_(true);
            var y64 = nn.functional.conv2d(a64, w64, b64, [stride, stride], [k / 2, k / 2]);
            (y64 * g.to_type(ScalarType.Float64)).sum().backward();
            static double Rel(Tensor x, Tensor r) => (x.to_type(ScalarType.Float64) - r).abs().max().item<double>() / (r.abs().max().item<double>() + 1e-12);
            Assert.True(Rel(y.detach(), y64.detach()) < 1e-2, $"forward off by {Rel(y.detach(), y64.detach()):G3}");
            Assert.True(Rel(yNoGrad, y64.detach()) < 1e-2, $"forward without gradients off by {Rel(yNoGrad, y64.detach()):G3}");
            Assert.True(Rel(a.grad!, a64.grad!) < 1e-2, $"input gradient off by {Rel(a.grad!, a64.grad!):G3}");
            Assert.Equal(ScalarType.Float32, conv.weight.grad!.dtype);
            Assert.True(Rel(conv.weight.grad!, w64.grad!) < 1e-2, $"weight gradient off by {Rel(conv.weight.grad!, w64.grad!):G3}");
            Assert.True(Rel(conv.bias.grad!, b64.grad!) < 1e-2, "bias gradient");
            conv.zero_grad();
        }
    }

    [Fact]
    public void Unet_in_bf16_mixed_follows_float32_and_returns_float32()
    {
        // The whole network in bf16-mixed against float32 on the same weights: output and input gradient agree to
        // bfloat16's precision (8 bits of mantissa: a few per cent after ~20 layers), and the output is float32.
        using var scope = NewDisposeScope();
        manual_seed(2);
        using var net = new UNet(1, 28, channels: 32, channelMult: [1, 2, 2], resBlocks: 1, attentionResolutions: [7], headChannels: 32, dropout: 0, normGroups: 8);
        using (no_grad()) foreach (var p in net.parameters()) p.add_(randn_like(p) * 0.05);
        var x = randn(4, 1, 28, 28);
        var t = tensor(new float[] { 3, 300, 600, 900 });
        var w = randn(4, 1, 28, 28);
        Tensor Run(Precision p, out Tensor grad)
        {
            var xi = x.clone().requires_grad_(true);
            Tensor y;
            using (Autocast.Enter(p)) y = net.call(xi, t);
            (y * w).sum().backward();
            net.zero_grad();
            grad = xi.grad!;
            return y.detach();
        }
        var y32 = Run(Precision.Float32, out var g32);
        var yb = Run(Precision.Bf16Mixed, out var gb);
        Assert.Equal(ScalarType.Float32, yb.dtype);
        double Rel(Tensor a, Tensor r) => (a - r).norm().item<float>() / r.norm().item<float>();
        Assert.True(Rel(yb, y32) < 0.05, $"output off by {Rel(yb, y32):G3}");
        Assert.True(Rel(gb, g32) < 0.05, $"input gradient off by {Rel(gb, g32):G3}");
        Assert.True(Rel(yb, y32) > 0, "bf16-mixed should not be bit-identical to float32 (the casts did not happen)");
    }

    /// <summary>
    /// Attention under bf16-mixed, fused kernel and matmul–softmax–matmul form alike, against float64 on the same
    /// (bfloat16-rounded) q, k, v: output and gradients to bfloat16's precision; the two forms differ (another
    /// rounding) but not by more than that.
    /// </summary>
    [Fact]
    public void Bf16_attention_in_either_form_follows_float64()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        var q = randn(3, 2, 49, 32).to_type(ScalarType.BFloat16).to_type(ScalarType.Float32);
        var k = randn(3, 2, 49, 32).to_type(ScalarType.BFloat16).to_type(ScalarType.Float32);
        var v = randn(3, 2, 49, 32).to_type(ScalarType.BFloat16).to_type(ScalarType.Float32);
        var g = randn(3, 2, 49, 32);
        var (q64, k64, v64) = (q.to_type(ScalarType.Float64).requires_grad_(true), k.to_type(ScalarType.Float64).requires_grad_(true), v.to_type(ScalarType.Float64).requires_grad_(true));
        var y64 = matmul(matmul(q64, k64.transpose(-1, -2)).div(Math.Sqrt(32)).softmax(-1), v64);
        (y64 * g.to_type(ScalarType.Float64)).sum().backward();
        static double Rel(Tensor a, Tensor r) => (a.to_type(ScalarType.Float64) - r).norm().item<double>() / r.norm().item<double>();
        var outputs = new List<Tensor>();
        foreach (bool matmulForm in new[] { false, true })
        {
            var (qi, ki, vi) = (q.clone().requires_grad_(true), k.clone().requires_grad_(true), v.clone().requires_grad_(true));
            Tensor y;
            bool before = Autocast.MatmulAttentionInBf16;
            Autocast.MatmulAttentionInBf16 = matmulForm;
            try { using (Autocast.Enter(Precision.Bf16Mixed)) y = Autocast.Attention(qi, ki, vi); }
            finally { Autocast.MatmulAttentionInBf16 = before; }
            Assert.Equal(ScalarType.BFloat16, y.dtype);
            (y.to_type(ScalarType.Float32) * g).sum().backward();
            string form = matmulForm ? "matmul form" : "fused";
            Assert.True(Rel(y.detach(), y64.detach()) < 1e-2, $"{form}: output off by {Rel(y.detach(), y64.detach()):G3}");
            foreach (var (grad, reference, name) in new[] { (qi.grad!, q64.grad!, "q"), (ki.grad!, k64.grad!, "k"), (vi.grad!, v64.grad!, "v") })
            {
                Assert.Equal(ScalarType.Float32, grad.dtype);
                Assert.True(Rel(grad, reference) < 2e-2, $"{form}: gradient of {name} off by {Rel(grad, reference):G3}");
            }
            outputs.Add(y.detach().to_type(ScalarType.Float32));
        }
        Assert.False(outputs[0].eq(outputs[1]).all().item<bool>(), "the two forms should round differently (was the matmul form taken?)");
    }

    [Fact]
    public void Group_norm_starts_as_the_identity_affine_map()
    {
        for (int i = 0; i < 5; i++)
        {
            using var gn = Layers.GroupNorm(8, 64);
            Assert.True(gn.weight!.eq(1).all().item<bool>());
            Assert.True(gn.bias!.eq(0).all().item<bool>());
        }
    }

    [Fact]
    public void Mlp_accepts_real_valued_time()
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        using var net = new MlpDenoiser(3, 32, 2, 16);
        // The blocks' last layers start at zero (each block the identity); move off that point first.
        using (no_grad()) foreach (var p in net.parameters()) p.add_(randn_like(p) * 0.05);
        var x = randn(5, 3);
        var y1 = net.call(x, full(5, 100.0f));
        var y2 = net.call(x, full(5, 100.5f));
        Assert.Equal(x.shape, y1.shape);
        Assert.True((y1 - y2).abs().max().item<float>() > 0);
    }

    [Fact]
    public void Time_embedding_is_cos_then_sin_of_geometric_frequencies()
    {
        using var e = TimeEmbedding.Sinusoidal(tensor(new float[] { 0f, 2.5f }), 8);
        var v = e.data<float>().ToArray();
        for (int k = 0; k < 4; k++)
        {
            double w = Math.Pow(10000, -k / 4.0);
            Assert.Equal(1.0, v[k], 6);
            Assert.Equal(0.0, v[4 + k], 6);
            Assert.Equal(Math.Cos(2.5 * w), v[8 + k], 5);
            Assert.Equal(Math.Sin(2.5 * w), v[12 + k], 5);
        }
    }
}
