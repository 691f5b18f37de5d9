using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using Diffusion.Util;

namespace Diffusion.Models;

/// <summary>Layer constructors that work around defects of TorchSharp 0.107 / libtorch 2.10 on the CPU.</summary>
public static class Layers
{
    /// <summary>
    /// GroupNorm with weight = 1 and bias = 0. TorchSharp 0.107's <c>nn.GroupNorm</c> leaves its affine
    /// parameters uninitialised (whatever the allocator returned, NaN included), so they are set here.
    /// </summary>
    public static GroupNorm GroupNorm(int groups, int channels, double eps = 1e-5)
    {
        var gn = nn.GroupNorm(groups, channels, eps);
        using (no_grad())
        {
            nn.init.ones_(gn.weight!);
            nn.init.zeros_(gn.bias!);
        }
        return gn;
    }

    /// <summary>A 2-D convolution whose gradients are right whatever its channel counts (see <see cref="SafeConv2d"/>).</summary>
    public static SafeConv2d Conv2d(int inChannels, int outChannels, int kernel, int stride = 1, int padding = 0) =>
        new(inChannels, outChannels, kernel, stride, padding);
}

/// <summary>
/// A 2-D convolution (same parameters, initialisation and state-dict names as <c>nn.Conv2d</c>) that avoids defects
/// of libtorch 2.10's oneDNN (v3.7.1) CPU convolution, measured on this project's AVX-512 machine against float64:
/// <list type="bullet">
/// <item>float32 backward-data returns wrong input gradients (20–40 % off, sometimes NaN) when the weights have to
/// be zero-padded to the kernel's channel block: output channels not a multiple of 32 (1, 3, 8, 12, 24 wrong; 16, 32,
/// 64 exact), or, for stride 2, input channels not a multiple of 32;</item>
/// <item>float32 forward is wrong for input channels above 16 that are not a multiple of 16 (17–31, 33–47, …);</item>
/// <item>bfloat16 forward is wrong for output channels not a multiple of 16 and for input channels above 16 not a
/// multiple of 16, and its input gradients are wrong for 1, 3 and 8 input channels.</item>
/// </list>
/// This layer therefore zero-pads the channel counts (<see cref="PaddedChannels"/>: weights, and input channels of
/// the input) and slices the result, so the mathematics is unchanged and the faulty paths are never taken; counts
/// that need nothing take the plain convolution. <c>ModelTests</c> checks outputs and gradients against float64 in
/// both precisions.
/// </summary>
public sealed class SafeConv2d : Module<Tensor, Tensor>
{
    private const int Block = 32;
#pragma warning disable IDE1006 // state-dict names as in nn.Conv2d
    public Parameter weight;
    public Parameter bias;
#pragma warning restore IDE1006
    private readonly long stride, padding;
    private readonly long inCh, outCh;

    public SafeConv2d(int inChannels, int outChannels, int kernel, int stride = 1, int padding = 0) : base(nameof(SafeConv2d))
    {
        inCh = inChannels; outCh = outChannels;
        this.stride = stride; this.padding = padding;
        weight = new Parameter(empty(outChannels, inChannels, kernel, kernel));
        bias = new Parameter(empty(outChannels));
        using (no_grad())
        {
            // nn.Conv2d's initialisation: kaiming_uniform(a = √5) for the weight, U(±1/√fan_in) for the bias.
            init.kaiming_uniform_(weight, Math.Sqrt(5));
            double bound = 1.0 / Math.Sqrt(inChannels * kernel * kernel);
            init.uniform_(bias, -bound, bound);
        }
        RegisterComponents();
    }

    public long InChannels => inCh;
    public long OutChannels => outCh;
    public long Stride => stride;

    public override Tensor forward(Tensor x)
    {
        if (!Autocast.Active) return Conv(x, weight, bias, bf16: false);
        // bf16-mixed: input and weights in bfloat16, and so the output (see Autocast).
        using var scope = NewDisposeScope();
        return Conv(Autocast.Bf16(x), weight.to_type(ScalarType.BFloat16), bias.to_type(ScalarType.BFloat16), bf16: true).MoveToOuterDisposeScope();
    }

    /// <summary>Channel counts the convolution is computed with (zero-padded where oneDNN is wrong, see the class remarks).</summary>
    internal (long In, long Out) PaddedChannels(bool bf16, bool grad)
    {
        long inP = inCh, outP = outCh;
        if (bf16)
        {
            // bfloat16: wrong forward unless both counts are multiples of 16; wrong input gradients for 1, 3, 8 inputs.
            if (inCh % 16 != 0) inP = RoundUp(inCh, 16);
            if (outCh % 16 != 0) outP = RoundUp(outCh, Block);
        }
        else if (inCh > 16 && inCh % 16 != 0) inP = RoundUp(inCh, 16); // float32: wrong forward for 17–31, 33–47, … inputs
        if (grad)
        {
            if (outCh % Block != 0) outP = RoundUp(outCh, Block);
            if (stride > 1 && inCh % Block != 0) inP = RoundUp(inCh, Block);
        }
        return (inP, outP);
    }

    private Tensor Conv(Tensor x, Tensor weight, Tensor bias, bool bf16)
    {
        var (inP, outP) = PaddedChannels(bf16, is_grad_enabled());
        if (outP == outCh && inP == inCh)
            return functional.conv2d(x, weight, bias, [stride, stride], [padding, padding]);

        using var scope = NewDisposeScope();
        Tensor w = weight, input = x;
        if (inP != inCh)
        {
            w = cat([w, zeros(outCh, inP - inCh, w.shape[2], w.shape[3], dtype: w.dtype, device: w.device)], 1);
            input = cat([x, zeros(x.shape[0], inP - inCh, x.shape[2], x.shape[3], dtype: x.dtype, device: x.device)], 1);
        }
        if (outP != outCh)
            w = cat([w, zeros(outP - outCh, inP, w.shape[2], w.shape[3], dtype: w.dtype, device: w.device)], 0);
        var y = functional.conv2d(input, w, null, [stride, stride], [padding, padding]);
        if (outP != outCh) y = y.narrow(1, 0, outCh);
        return y.Add(bias.reshape(1, -1, 1, 1)).MoveToOuterDisposeScope();
    }

    private static long RoundUp(long c, long block) => (c + block - 1) / block * block;
}
