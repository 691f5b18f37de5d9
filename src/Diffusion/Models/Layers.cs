using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

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
/// A 2-D convolution (same parameters, initialisation and state-dict names as <c>nn.Conv2d</c>) that
/// avoids a defect of libtorch 2.10's oneDNN (v3.7.1) CPU convolution: its backward-data pass returns
/// wrong input gradients — garbage, sometimes NaN — when the weights have to be zero-padded to the
/// kernel's channel block (output channels not a multiple of the block for stride 1, input channels
/// not a multiple of 32 for stride 2). Measured on this project's AVX-512 machine: a 3×3 convolution
/// with 1, 3, 8, 12 or 24 output channels gave input gradients off by 20–40% (relative) in every
/// trial; 16, 32, 64 were exact. The forward pass is right in all cases.
/// While gradients are being recorded, this layer therefore pads the channel counts to multiples of
/// 32 with zero weights (and, for stride &gt; 1, zero input channels) and slices the result: the
/// mathematics is unchanged and the buggy padded path is never taken. Without gradients it is a
/// plain convolution. <c>tests/…/SafeConv2dTests</c> checks both gradients against float64.
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
        long outP = RoundUp(outCh), inP = stride > 1 ? RoundUp(inCh) : inCh;
        if (!is_grad_enabled() || (outP == outCh && inP == inCh))
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
        return (y + bias.reshape(1, -1, 1, 1)).MoveToOuterDisposeScope();
    }

    private static long RoundUp(long c) => (c + Block - 1) / Block * Block;
}
