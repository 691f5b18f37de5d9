using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using Diffusion.Util;

namespace Diffusion.Models;

/// <summary>A block of the UNet that may use the time embedding: forward(h, emb).</summary>
public abstract class EmbBlock(string name) : Module<Tensor, Tensor, Tensor>(name);

/// <summary>
/// ADM/DDPM-style residual block: GroupNorm → SiLU → 3×3 conv, then the time embedding applied as
/// scale-and-shift after the second GroupNorm (h·(1 + scale) + shift) → SiLU → dropout → 3×3 conv
/// (zero-initialised), plus a 1×1 skip when the channel count changes.
/// </summary>
public sealed class ResBlock : EmbBlock
{
    private readonly GroupNorm norm1, norm2;
    private readonly SafeConv2d conv1, conv2;
    private readonly Linear embProj;
    private readonly Dropout dropout;
    private readonly SafeConv2d? skip;

    public ResBlock(int inCh, int outCh, int embDim, double dropoutP, int groups) : base(nameof(ResBlock))
    {
        norm1 = Layers.GroupNorm(UNet.Groups(groups, inCh), inCh);
        conv1 = Layers.Conv2d(inCh, outCh, 3, padding: 1);
        embProj = Linear(embDim, 2 * outCh);
        norm2 = Layers.GroupNorm(UNet.Groups(groups, outCh), outCh);
        dropout = Dropout(dropoutP);
        conv2 = Layers.Conv2d(outCh, outCh, 3, padding: 1);
        using (no_grad()) { init.zeros_(conv2.weight); init.zeros_(conv2.bias); }
        if (inCh != outCh) skip = Layers.Conv2d(inCh, outCh, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor emb)
    {
        using var scope = NewDisposeScope();
        var h = conv1.call(functional.silu(norm1.call(x)));
        var e = Autocast.Linear(embProj, functional.silu(emb));
        var ss = e.unsqueeze(-1).unsqueeze(-1).chunk(2, dim: 1);
        h = (norm2.call(h) * ss[0].Add(1L)).Add(ss[1]);
        h = conv2.call(dropout.call(functional.silu(h)));
        var s = skip is null ? x : skip.call(x);
        return s.Add(h).MoveToOuterDisposeScope();
    }
}

/// <summary>Multi-head self-attention over the pixels of a feature map (GroupNorm → QKV → attention → zero-initialised projection, residual).</summary>
public sealed class AttentionBlock : EmbBlock
{
    private readonly GroupNorm norm;
    private readonly SafeConv2d qkv, proj;
    private readonly int heads;

    public AttentionBlock(int ch, int headChannels, int groups) : base(nameof(AttentionBlock))
    {
        heads = Math.Max(1, ch / headChannels);
        if (ch % heads != 0) heads = 1;
        norm = Layers.GroupNorm(UNet.Groups(groups, ch), ch);
        qkv = Layers.Conv2d(ch, 3 * ch, 1);
        proj = Layers.Conv2d(ch, ch, 1);
        using (no_grad()) { init.zeros_(proj.weight); init.zeros_(proj.bias); }
        RegisterComponents();
    }

    /// <summary>FLOPs per example of the two attention products in the last forward pass (2·L²·C each), for benchmarks.</summary>
    public double LastFlopsPerExample { get; private set; }

    public override Tensor forward(Tensor x, Tensor emb)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], c = x.shape[1], hgt = x.shape[2], wid = x.shape[3], l = hgt * wid;
        LastFlopsPerExample = 2.0 * 2.0 * l * l * c;
        var q3 = qkv.call(norm.call(x)).reshape(b, 3, heads, c / heads, l).permute(1, 0, 2, 4, 3); // 3, B, heads, L, d
        var a = Autocast.Attention(q3[0], q3[1], q3[2]);                                          // B, heads, L, d
        var h = a.permute(0, 1, 3, 2).reshape(b, c, hgt, wid);
        return x.Add(proj.call(h)).MoveToOuterDisposeScope();
    }
}

/// <summary>Stride-2 3×3 convolution.</summary>
public sealed class Downsample : EmbBlock
{
    private readonly SafeConv2d conv;
    public Downsample(int ch) : base(nameof(Downsample)) { conv = Layers.Conv2d(ch, ch, 3, stride: 2, padding: 1); RegisterComponents(); }
    public override Tensor forward(Tensor x, Tensor emb) => conv.call(x);
}

/// <summary>Nearest-neighbour upsampling to a fixed size (so odd sides such as 7 → 14 → 28 work), then a 3×3 convolution.</summary>
public sealed class Upsample : EmbBlock
{
    private readonly SafeConv2d conv;
    private readonly long[] size;
    public Upsample(int ch, long side) : base(nameof(Upsample)) { conv = Layers.Conv2d(ch, ch, 3, padding: 1); size = [side, side]; RegisterComponents(); }
    public override Tensor forward(Tensor x, Tensor emb)
    {
        using var up = functional.interpolate(x, size: size, mode: InterpolationMode.Nearest);
        return conv.call(up);
    }
}

/// <summary>A sequence of <see cref="EmbBlock"/>s.</summary>
public sealed class EmbSequential : EmbBlock
{
    private readonly ModuleList<EmbBlock> blocks;
    public EmbSequential(params EmbBlock[] items) : base(nameof(EmbSequential)) { blocks = new ModuleList<EmbBlock>(items); RegisterComponents(); }
    public override Tensor forward(Tensor x, Tensor emb)
    {
        var h = x;
        foreach (var b in blocks)
        {
            var next = b.call(h, emb);
            if (!ReferenceEquals(h, x)) h.Dispose();
            h = next;
        }
        return ReferenceEquals(h, x) ? x.alias() : h;
    }
}

/// <summary>
/// An ADM/DDPM-style UNet for images of any channel count: residual blocks with GroupNorm and SiLU,
/// the timestep embedding applied as scale-and-shift, dropout, self-attention at the configured
/// feature-map sides, channel multipliers per level and a real-valued time input. Works at any square
/// size (28×28 and 32×32 included): upsampling restores the exact side of the matching skip connection.
/// </summary>
public sealed class UNet : DenoiserNetwork
{
    private readonly SafeConv2d convIn;
    private readonly Linear temb1, temb2;
    private readonly ModuleList<EmbBlock> down;
    private readonly EmbSequential middle;
    private readonly ModuleList<EmbBlock> up;
    private readonly GroupNorm normOut;
    private readonly SafeConv2d convOut;
    private readonly int baseCh;
    private readonly long[] exampleShape;
    // Soft mixture denoising: hypernetwork layers after the input convolution and after the last residual block.
    private readonly HyperLayer? hyperIn, hyperOut;
    // Class conditioning: numClasses + 1 rows (the last the null class), added to the time embedding.
    private readonly Embedding? class_embedding;
    private readonly int numClasses;

    public override long[] ExampleShape => exampleShape;
    public override int NumClasses => numClasses;

    /// <param name="inChannels">Channels of the input images (1 gray, 3 RGB).</param>
    /// <param name="imageSize">Side of the square input images in pixels.</param>
    /// <param name="channels">Base channel count of the first level (also the time embedding's size; the embedding MLP is 4× wider).</param>
    /// <param name="channelMult">Channel multiplier of each level, one level per entry (default [1, 2, 2]).</param>
    /// <param name="resBlocks">Residual blocks per level on the way down (one more per level on the way up).</param>
    /// <param name="attentionResolutions">Feature-map sides at which self-attention follows the residual blocks (default: none; the middle always has one).</param>
    /// <param name="headChannels">Channels per attention head (heads = channels / headChannels, at least 1).</param>
    /// <param name="dropout">Dropout probability inside the residual blocks.</param>
    /// <param name="normGroups">GroupNorm groups (reduced to the largest divisor of the channel count when it does not divide it).</param>
    /// <param name="outChannels">Output channels (default: the input's, as a denoiser needs).</param>
    /// <param name="hyperLatentDim">When positive, hypernetwork layers conditioned on a per-pixel latent map of this many channels (SMD).</param>
    /// <param name="hyperLayers">1: a hyper layer after the input convolution; 2: also after the last residual block.</param>
    /// <param name="classes">When positive, class-conditional: a learned embedding of classes + 1 rows (the last the null class) added to the time embedding.</param>
    public UNet(int inChannels, int imageSize, int channels = 64, int[]? channelMult = null, int resBlocks = 2,
                int[]? attentionResolutions = null, int headChannels = 32, double dropout = 0.1, int normGroups = 32,
                int? outChannels = null, int hyperLatentDim = 0, int hyperLayers = 2, int classes = 0)
        : base(nameof(UNet))
    {
        channelMult ??= [1, 2, 2];
        attentionResolutions ??= [];
        baseCh = channels;
        exampleShape = [inChannels, imageSize, imageSize];
        int embDim = 4 * channels;
        temb1 = Linear(channels, embDim);
        temb2 = Linear(embDim, embDim);
        convIn = Layers.Conv2d(inChannels, channels, 3, padding: 1);

        var downBlocks = new List<EmbBlock>();
        var skipCh = new List<int> { channels };
        var sides = new List<long> { imageSize };
        int ch = channels;
        long side = imageSize;
        for (int level = 0; level < channelMult.Length; level++)
        {
            for (int i = 0; i < resBlocks; i++)
            {
                int outCh = channels * channelMult[level];
                var layers = new List<EmbBlock> { new ResBlock(ch, outCh, embDim, dropout, normGroups) };
                ch = outCh;
                if (attentionResolutions.Contains((int)side)) layers.Add(new AttentionBlock(ch, headChannels, normGroups));
                downBlocks.Add(new EmbSequential([.. layers]));
                skipCh.Add(ch);
                sides.Add(side);
            }
            if (level != channelMult.Length - 1)
            {
                downBlocks.Add(new Downsample(ch));
                side = (side + 1) / 2;
                skipCh.Add(ch);
                sides.Add(side);
            }
        }
        down = new ModuleList<EmbBlock>([.. downBlocks]);
        middle = new EmbSequential(new ResBlock(ch, ch, embDim, dropout, normGroups), new AttentionBlock(ch, headChannels, normGroups),
                                   new ResBlock(ch, ch, embDim, dropout, normGroups));

        var upBlocks = new List<EmbBlock>();
        for (int level = channelMult.Length - 1; level >= 0; level--)
        {
            for (int i = 0; i <= resBlocks; i++)
            {
                int sk = skipCh[^1]; skipCh.RemoveAt(skipCh.Count - 1);
                sides.RemoveAt(sides.Count - 1);
                int outCh = channels * channelMult[level];
                var layers = new List<EmbBlock> { new ResBlock(ch + sk, outCh, embDim, dropout, normGroups) };
                ch = outCh;
                if (attentionResolutions.Contains((int)side)) layers.Add(new AttentionBlock(ch, headChannels, normGroups));
                if (level > 0 && i == resBlocks)
                {
                    side = sides[^1];
                    layers.Add(new Upsample(ch, side));
                }
                upBlocks.Add(new EmbSequential([.. layers]));
            }
        }
        up = new ModuleList<EmbBlock>([.. upBlocks]);
        normOut = Layers.GroupNorm(Groups(normGroups, ch), ch);
        convOut = Layers.Conv2d(ch, outChannels ?? inChannels, 3, padding: 1);
        if (hyperLatentDim > 0)
        {
            hyperIn = new HyperLayer(channels, hyperLatentDim);
            if (hyperLayers >= 2) hyperOut = new HyperLayer(ch, hyperLatentDim);
        }
        using (no_grad()) { init.zeros_(convOut.weight); init.zeros_(convOut.bias); }
        numClasses = classes;
        if (classes > 0) class_embedding = Embedding(classes + 1, embDim);
        RegisterComponents();
    }

    /// <summary>The largest divisor of <paramref name="ch"/> not above <paramref name="groups"/>.</summary>
    internal static int Groups(int groups, int ch)
    {
        int g = Math.Min(groups, ch);
        while (ch % g != 0) g--;
        return g;
    }

    public override Tensor forward(Tensor x, Tensor t) => ForwardWithLatent(x, t, null);

    /// <summary>The forward pass with a per-pixel latent map z ([N, D, H, W]) for the hyper layers (SMD); z may be null when there are none.</summary>
    public override Tensor ForwardWithLatent(Tensor x, Tensor t, Tensor? z, Tensor? labels = null)
    {
        if ((hyperIn is null) != (z is null))
            throw new InvalidOperationException(hyperIn is null ? "this UNet has no hyper layers to condition on a latent" : "this UNet's hyper layers need a latent map");
        using var scope = NewDisposeScope();
        var emb = Autocast.Linear(temb2, functional.silu(Autocast.Linear(temb1, TimeEmbedding.Sinusoidal(t, baseCh).to_type(x.dtype))));
        emb = AddClassEmbedding(emb, class_embedding, numClasses, labels);
        var h = convIn.call(x);
        if (hyperIn is not null) h = hyperIn.call(h, z!);
        var skips = new List<Tensor> { h };
        foreach (var b in down)
        {
            h = b.call(h, emb);
            skips.Add(h);
        }
        h = middle.call(h, emb);
        foreach (var b in up)
        {
            var s = skips[^1]; skips.RemoveAt(skips.Count - 1);
            h = b.call(cat([h, s], dim: 1), emb);
        }
        if (hyperOut is not null) h = hyperOut.call(h, z!);
        var o = convOut.call(functional.silu(normOut.call(h)));
        return Autocast.Output(o, x).MoveToOuterDisposeScope();
    }
}
