using Diffusion.Data;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace Diffusion.Metrics.Features;

/// <summary>
/// The Inception-v3 variant behind the standard FID (the TensorFlow graph of 2015-12-05 that
/// pytorch-fid ports): 2048-d features from the final average pooling. It differs from torchvision's
/// Inception-v3 in its blocks: the pool branch of the A, C and first E blocks (Mixed_5b–d, 6b–e, 7b)
/// averages without counting the padding, the pool branch of the second E block (Mixed_7c) is a max
/// pooling, BatchNorm uses ε = 0.001, and the classifier has 1008 classes (unused here).
/// Inputs in [−1, 1] are resized bilinearly to 299×299 (align_corners = false); gray images are
/// repeated to three channels. (pytorch-fid takes [0, 1] inputs, resizes, then maps to [−1, 1]: the
/// same numbers, since bilinear weights sum to one.)
/// <para>Weights come from a file the user supplies: pytorch-fid's <c>pt_inception-2015-12-05-6726825d.pth</c> as it
/// is (a PyTorch state dict), or an .npz with one array per state-dict name converted from it (README, "Evaluation").
/// Parameter and buffer names are torchvision's, so the file maps one to one.</para>
/// <para>Inference only: the convolutions are plain <c>nn.Conv2d</c> (libtorch's forward pass is
/// right; only its input gradients are wrong for some channel counts, see <c>Layers</c>).</para>
/// </summary>
public sealed class InceptionFid : IFeatureExtractor
{
    public const int InputSize = 299;
    public const int FeatureDim = 2048;

    private readonly InceptionFidNetwork net;
    private readonly int batch;

    public InceptionFid(InceptionFidNetwork network, int batchSize = 32)
    {
        net = network;
        net.eval();
        batch = batchSize;
    }

    public string Name => "inception-fid";
    private string? identity;
    public string Identity => identity ??= ExtractorIdentity.Of(Name, net);
    public InceptionFidNetwork Network => net;

    /// <summary>
    /// Loads the weights from pytorch-fid's <c>.pth</c> state dict as it is (read by <see cref="IO.StateDictFiles"/>,
    /// recognised by its content) or from an .npz (see the class summary); every problem is one line naming the file.
    /// </summary>
    public static InceptionFid Load(string path, int batchSize = 32)
    {
        var net = new InceptionFidNetwork();
        var arrays = IO.StateDictFiles.IsPyTorchFile(path) ? IO.StateDictFiles.ReadPyTorch(path) : Npz.ReadAll(path).Arrays;
        try { net.LoadWeights(arrays, path); }
        catch { net.Dispose(); throw; }
        finally { foreach (var t in arrays.Values) t.Dispose(); }
        return new InceptionFid(net, batchSize);
    }

    public Tensor Extract(Tensor x, Action<long, long>? progress = null)
    {
        if (x.dim() != 4 || (x.shape[1] != 1 && x.shape[1] != 3))
            throw new UserError($"inception-fid: expected images of shape [N, 1 or 3, H, W], got [{string.Join(", ", x.shape)}]");
        return Batched.Map(x, batch, b => net.call(Preprocess(b)), progress);
    }

    /// <summary>Gray → three channels, bilinear resize to 299×299 (align_corners = false), float32.</summary>
    public static Tensor Preprocess(Tensor x)
    {
        var y = x.to_type(ScalarType.Float32);
        if (y.shape[1] == 1) y = y.expand(-1, 3, -1, -1);
        if (y.shape[2] != InputSize || y.shape[3] != InputSize)
            y = F.interpolate(y, size: [InputSize, InputSize], mode: InterpolationMode.Bilinear, align_corners: false);
        return y;
    }

    public void Dispose() => net.Dispose();
}

/// <summary>Convolution without bias, BatchNorm (ε = 0.001), ReLU: torchvision's BasicConv2d.</summary>
public sealed class BasicConv : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // state-dict names as in torchvision
    private readonly Conv2d conv;
    private readonly BatchNorm2d bn;
#pragma warning restore IDE1006

    public BasicConv(long inCh, long outCh, (long, long) kernel, (long, long)? stride = null, (long, long)? padding = null) : base(nameof(BasicConv))
    {
        conv = Conv2d(inCh, outCh, kernel, stride: stride ?? (1, 1), padding: padding ?? (0, 0), bias: false);
        bn = BatchNorm2d(outCh, eps: 0.001);
        RegisterComponents();
    }

    public BasicConv(long inCh, long outCh, long kernel, long stride = 1, long padding = 0)
        : this(inCh, outCh, (kernel, kernel), (stride, stride), (padding, padding)) { }

    public override Tensor forward(Tensor x) => F.relu(bn.call(conv.call(x)));
}

/// <summary>
/// Pool branches: the FID blocks average without counting the padding (TensorFlow's graph) and take the
/// max in Mixed_7c; torchvision's plain blocks average with the padding counted everywhere.
/// </summary>
internal static class FidPool
{
    public static Tensor Average3x3(Tensor x, bool plain) => F.avg_pool2d(x, kernel_size: 3, stride: 1, padding: 1, count_include_pad: plain);
    public static Tensor Max3x3(Tensor x) => F.max_pool2d(x, kernel_size: 3, stride: 1, padding: 1);
}

/// <summary>Mixed_5b–d (FID InceptionA): 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg-pool (no padding counts)→1×1.</summary>
public sealed class FidBlockA : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006
    private readonly BasicConv branch1x1, branch5x5_1, branch5x5_2, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3, branch_pool;
#pragma warning restore IDE1006
    private readonly bool plain;

    public FidBlockA(long inCh, long poolFeatures, bool plainPooling = false) : base(nameof(FidBlockA))
    {
        plain = plainPooling;
        branch1x1 = new BasicConv(inCh, 64, 1);
        branch5x5_1 = new BasicConv(inCh, 48, 1);
        branch5x5_2 = new BasicConv(48, 64, 5, padding: 2);
        branch3x3dbl_1 = new BasicConv(inCh, 64, 1);
        branch3x3dbl_2 = new BasicConv(64, 96, 3, padding: 1);
        branch3x3dbl_3 = new BasicConv(96, 96, 3, padding: 1);
        branch_pool = new BasicConv(inCh, poolFeatures, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b1 = branch1x1.call(x);
        var b5 = branch5x5_2.call(branch5x5_1.call(x));
        var b3 = branch3x3dbl_3.call(branch3x3dbl_2.call(branch3x3dbl_1.call(x)));
        var bp = branch_pool.call(FidPool.Average3x3(x, plain));
        return cat([b1, b5, b3, bp], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>Mixed_6a (InceptionB, unchanged): stride-2 3×3 | 1×1→3×3→3×3 (stride 2) | max-pool.</summary>
public sealed class BlockB : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006
    private readonly BasicConv branch3x3, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3;
#pragma warning restore IDE1006

    public BlockB(long inCh) : base(nameof(BlockB))
    {
        branch3x3 = new BasicConv(inCh, 384, 3, stride: 2);
        branch3x3dbl_1 = new BasicConv(inCh, 64, 1);
        branch3x3dbl_2 = new BasicConv(64, 96, 3, padding: 1);
        branch3x3dbl_3 = new BasicConv(96, 96, 3, stride: 2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b3 = branch3x3.call(x);
        var bd = branch3x3dbl_3.call(branch3x3dbl_2.call(branch3x3dbl_1.call(x)));
        var bp = F.max_pool2d(x, kernel_size: 3, stride: 2);
        return cat([b3, bd, bp], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>Mixed_6b–e (FID InceptionC): factorised 7×7 branches and an avg-pool branch without padding counts.</summary>
public sealed class FidBlockC : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006
    private readonly BasicConv branch1x1, branch7x7_1, branch7x7_2, branch7x7_3,
        branch7x7dbl_1, branch7x7dbl_2, branch7x7dbl_3, branch7x7dbl_4, branch7x7dbl_5, branch_pool;
#pragma warning restore IDE1006
    private readonly bool plain;

    public FidBlockC(long inCh, long c7, bool plainPooling = false) : base(nameof(FidBlockC))
    {
        plain = plainPooling;
        branch1x1 = new BasicConv(inCh, 192, 1);
        branch7x7_1 = new BasicConv(inCh, c7, 1);
        branch7x7_2 = new BasicConv(c7, c7, (1, 7), padding: (0, 3));
        branch7x7_3 = new BasicConv(c7, 192, (7, 1), padding: (3, 0));
        branch7x7dbl_1 = new BasicConv(inCh, c7, 1);
        branch7x7dbl_2 = new BasicConv(c7, c7, (7, 1), padding: (3, 0));
        branch7x7dbl_3 = new BasicConv(c7, c7, (1, 7), padding: (0, 3));
        branch7x7dbl_4 = new BasicConv(c7, c7, (7, 1), padding: (3, 0));
        branch7x7dbl_5 = new BasicConv(c7, 192, (1, 7), padding: (0, 3));
        branch_pool = new BasicConv(inCh, 192, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b1 = branch1x1.call(x);
        var b7 = branch7x7_3.call(branch7x7_2.call(branch7x7_1.call(x)));
        var bd = branch7x7dbl_5.call(branch7x7dbl_4.call(branch7x7dbl_3.call(branch7x7dbl_2.call(branch7x7dbl_1.call(x)))));
        var bp = branch_pool.call(FidPool.Average3x3(x, plain));
        return cat([b1, b7, bd, bp], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>Mixed_7a (InceptionD, unchanged): 1×1→3×3 (stride 2) | 1×1→1×7→7×1→3×3 (stride 2) | max-pool.</summary>
public sealed class BlockD : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006
    private readonly BasicConv branch3x3_1, branch3x3_2, branch7x7x3_1, branch7x7x3_2, branch7x7x3_3, branch7x7x3_4;
#pragma warning restore IDE1006

    public BlockD(long inCh) : base(nameof(BlockD))
    {
        branch3x3_1 = new BasicConv(inCh, 192, 1);
        branch3x3_2 = new BasicConv(192, 320, 3, stride: 2);
        branch7x7x3_1 = new BasicConv(inCh, 192, 1);
        branch7x7x3_2 = new BasicConv(192, 192, (1, 7), padding: (0, 3));
        branch7x7x3_3 = new BasicConv(192, 192, (7, 1), padding: (3, 0));
        branch7x7x3_4 = new BasicConv(192, 192, 3, stride: 2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b3 = branch3x3_2.call(branch3x3_1.call(x));
        var b7 = branch7x7x3_4.call(branch7x7x3_3.call(branch7x7x3_2.call(branch7x7x3_1.call(x))));
        var bp = F.max_pool2d(x, kernel_size: 3, stride: 2);
        return cat([b3, b7, bp], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Mixed_7b and Mixed_7c (FID InceptionE_1 and E_2): 1×1 | 1×1→(1×3, 3×1) | 1×1→3×3→(1×3, 3×1) | pool→1×1,
/// where the pool is an average without padding counts in 7b and a max in 7c.
/// </summary>
public sealed class FidBlockE : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006
    private readonly BasicConv branch1x1, branch3x3_1, branch3x3_2a, branch3x3_2b,
        branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3a, branch3x3dbl_3b, branch_pool;
#pragma warning restore IDE1006
    private readonly bool maxPool, plain;

    public FidBlockE(long inCh, bool maxPool, bool plainPooling = false) : base(nameof(FidBlockE))
    {
        this.maxPool = maxPool && !plainPooling;
        plain = plainPooling;
        branch1x1 = new BasicConv(inCh, 320, 1);
        branch3x3_1 = new BasicConv(inCh, 384, 1);
        branch3x3_2a = new BasicConv(384, 384, (1, 3), padding: (0, 1));
        branch3x3_2b = new BasicConv(384, 384, (3, 1), padding: (1, 0));
        branch3x3dbl_1 = new BasicConv(inCh, 448, 1);
        branch3x3dbl_2 = new BasicConv(448, 384, 3, padding: 1);
        branch3x3dbl_3a = new BasicConv(384, 384, (1, 3), padding: (0, 1));
        branch3x3dbl_3b = new BasicConv(384, 384, (3, 1), padding: (1, 0));
        branch_pool = new BasicConv(inCh, 192, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var b1 = branch1x1.call(x);
        var b3 = branch3x3_1.call(x);
        b3 = cat([branch3x3_2a.call(b3), branch3x3_2b.call(b3)], 1);
        var bd = branch3x3dbl_2.call(branch3x3dbl_1.call(x));
        bd = cat([branch3x3dbl_3a.call(bd), branch3x3dbl_3b.call(bd)], 1);
        var bp = branch_pool.call(maxPool ? FidPool.Max3x3(x) : FidPool.Average3x3(x, plain));
        return cat([b1, b3, bd, bp], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The FID Inception-v3 up to its 2048-d average-pool features, with torchvision's module names.
/// The constructor's <c>plainPooling</c> = true builds torchvision's own blocks instead (padding counted in
/// every average pool, no max pool in Mixed_7c), as pytorch-fid's <c>use_fid_inception=False</c> does:
/// not for FID scores, but to show what the FID blocks change.
/// </summary>
public sealed class InceptionFidNetwork : Module<Tensor, Tensor>
{
#pragma warning disable IDE1006
    private readonly BasicConv Conv2d_1a_3x3, Conv2d_2a_3x3, Conv2d_2b_3x3, Conv2d_3b_1x1, Conv2d_4a_3x3;
    private readonly FidBlockA Mixed_5b, Mixed_5c, Mixed_5d;
    private readonly BlockB Mixed_6a;
    private readonly FidBlockC Mixed_6b, Mixed_6c, Mixed_6d, Mixed_6e;
    private readonly BlockD Mixed_7a;
    private readonly FidBlockE Mixed_7b, Mixed_7c;
#pragma warning restore IDE1006

    public InceptionFidNetwork(bool plainPooling = false) : base(nameof(InceptionFidNetwork))
    {
        Conv2d_1a_3x3 = new BasicConv(3, 32, 3, stride: 2);
        Conv2d_2a_3x3 = new BasicConv(32, 32, 3);
        Conv2d_2b_3x3 = new BasicConv(32, 64, 3, padding: 1);
        Conv2d_3b_1x1 = new BasicConv(64, 80, 1);
        Conv2d_4a_3x3 = new BasicConv(80, 192, 3);
        Mixed_5b = new FidBlockA(192, 32, plainPooling);
        Mixed_5c = new FidBlockA(256, 64, plainPooling);
        Mixed_5d = new FidBlockA(288, 64, plainPooling);
        Mixed_6a = new BlockB(288);
        Mixed_6b = new FidBlockC(768, 128, plainPooling);
        Mixed_6c = new FidBlockC(768, 160, plainPooling);
        Mixed_6d = new FidBlockC(768, 160, plainPooling);
        Mixed_6e = new FidBlockC(768, 192, plainPooling);
        Mixed_7a = new BlockD(768);
        Mixed_7b = new FidBlockE(1280, maxPool: false, plainPooling);
        Mixed_7c = new FidBlockE(2048, maxPool: true, plainPooling);
        RegisterComponents();
    }

    /// <summary>[N, 3, H, W] (already preprocessed) → [N, 2048].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = Conv2d_2b_3x3.call(Conv2d_2a_3x3.call(Conv2d_1a_3x3.call(x)));
        h = F.max_pool2d(h, kernel_size: 3, stride: 2);
        h = Conv2d_4a_3x3.call(Conv2d_3b_1x1.call(h));
        h = F.max_pool2d(h, kernel_size: 3, stride: 2);
        foreach (var block in new Module<Tensor, Tensor>[] { Mixed_5b, Mixed_5c, Mixed_5d, Mixed_6a, Mixed_6b, Mixed_6c, Mixed_6d, Mixed_6e, Mixed_7a, Mixed_7b, Mixed_7c })
            h = block.call(h);
        return F.adaptive_avg_pool2d(h, [1, 1]).flatten(1).MoveToOuterDisposeScope();
    }

    /// <summary>Every parameter and BatchNorm buffer of the network, by torchvision's state-dict name.</summary>
    public IEnumerable<(string Name, Tensor Value)> NamedTensors() =>
        named_parameters().Select(p => (p.name, (Tensor)p.parameter))
            .Concat(named_buffers().Where(b => !b.name.EndsWith("num_batches_tracked", StringComparison.Ordinal)).Select(b => (b.name, b.buffer)));

    /// <summary>
    /// Copies weights by name from a converted state dict. Names the network does not have are an error,
    /// except the classifier (fc.*, which must have pytorch-fid's 1008 classes), the auxiliary classifier
    /// and BatchNorm's num_batches_tracked. A missing name or a shape mismatch is an error naming it.
    /// </summary>
    public void LoadWeights(IReadOnlyDictionary<string, Tensor> state, string origin)
    {
        const string Hint = "expected pytorch-fid's FID Inception weights (its .pth, or converted to .npz; see README, Evaluation)";
        if (state.TryGetValue("fc.weight", out var fc) && fc.shape[0] != 1008)
            throw new UserError($"{origin}: fc.weight has {fc.shape[0]} classes; the FID Inception has 1008 (torchvision's ImageNet Inception is a different network with 1000); {Hint}");
        var own = NamedTensors().ToDictionary(p => p.Name, p => p.Value);
        foreach (var key in state.Keys)
        {
            if (own.ContainsKey(key) || key.StartsWith("fc.", StringComparison.Ordinal) || key.StartsWith("AuxLogits.", StringComparison.Ordinal)
                || key.EndsWith("num_batches_tracked", StringComparison.Ordinal)) continue;
            throw new UserError($"{origin}: unexpected tensor '{key}'; {Hint}");
        }
        IO.StateDictFiles.CopyInto(state, own, origin, "the FID Inception", Hint);
    }
}
