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
            Assert.True(Rel(a.grad!, a64.grad!) < 1e-5, $"input gradient off by {Rel(a.grad!, a64.grad!):G3}");
            Assert.True(Rel(conv.weight.grad!, w64.grad!) < 1e-5, "weight gradient");
            Assert.True(Rel(conv.bias.grad!, b64.grad!) < 1e-5, "bias gradient");
            conv.zero_grad();
        }
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
