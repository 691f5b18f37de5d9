using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using Diffusion.Util;

namespace Diffusion.Models;

/// <summary>Pre-norm residual MLP block conditioned on the time embedding: h + W₂·SiLU(W₁·LN(h) + E·SiLU(emb)).</summary>
public sealed class MlpBlock : Module<Tensor, Tensor, Tensor>
{
    private readonly LayerNorm norm;
    private readonly Linear fc1, fc2, embProj;
    private readonly Dropout dropout;

    public MlpBlock(int hidden, int embDim, double dropoutP) : base(nameof(MlpBlock))
    {
        norm = LayerNorm(hidden);
        fc1 = Linear(hidden, hidden);
        embProj = Linear(embDim, hidden);
        fc2 = Linear(hidden, hidden);
        dropout = Dropout(dropoutP);
        using (no_grad()) { init.zeros_(fc2.weight); init.zeros_(fc2.bias); }
        RegisterComponents();
    }

    public override Tensor forward(Tensor h, Tensor emb)
    {
        using var scope = NewDisposeScope();
        var r = Autocast.Linear(fc1, norm.call(h)).Add(Autocast.Linear(embProj, functional.silu(emb)));
        r = Autocast.Linear(fc2, dropout.call(functional.silu(r)));
        return h.Add(r).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Denoiser for vector data (D-dimensional points): input projection, residual MLP blocks with a
/// sinusoidal embedding of the real-valued time, output projection back to D.
/// </summary>
public sealed class MlpDenoiser : DenoiserNetwork
{
    private readonly Linear inProj, temb1, temb2, outProj;
    private readonly ModuleList<MlpBlock> blocks;
    private readonly LayerNorm normOut;
    private readonly int embDim;
    private readonly long[] exampleShape;
    // Soft mixture denoising: hyper layers after the input projection (position 0) and after blocks (position i = after block i).
    private readonly ModuleList<HyperLayer>? hyper;
    private readonly int[] hyperAt = [];
    // Class conditioning: numClasses + 1 rows (the last the null class), added to the time embedding.
    private readonly Embedding? class_embedding;
    private readonly int numClasses;
    // Fourier features of the input: each coordinate as a sinusoidal embedding of this size of scale·x (0 = off).
    private readonly int inputEmbedDim;
    private readonly double inputEmbedScale;

    public override long[] ExampleShape => exampleShape;
    public override int NumClasses => numClasses;

    /// <param name="dim">D, the size of the input vectors.</param>
    /// <param name="hidden">Width of the hidden layers and of the projected time embedding.</param>
    /// <param name="blockCount">Number of residual MLP blocks.</param>
    /// <param name="timeEmbedDim">Size of the sinusoidal time embedding.</param>
    /// <param name="dropout">Dropout probability inside each block (0: none).</param>
    /// <param name="outDim">Output size (default: the input's, as a denoiser needs).</param>
    /// <param name="hyperLatentDim">When positive, hypernetwork layers conditioned on a latent vector of this size (SMD).</param>
    /// <param name="hyperLayers">Number of hyper layers: after the input projection, after the last block, then after earlier blocks.</param>
    /// <param name="classes">When positive, class-conditional: a learned embedding of classes + 1 rows (the last the null class) added to the time embedding.</param>
    /// <param name="inputEmbedDim">When positive (even), each input coordinate enters as a sinusoidal embedding of this size of <paramref name="inputEmbedScale"/>·x.</param>
    /// <param name="inputEmbedScale">Scale applied to the input before its sinusoidal embedding (used only when <paramref name="inputEmbedDim"/> is positive).</param>
    public MlpDenoiser(int dim, int hidden = 256, int blockCount = 4, int timeEmbedDim = 128, double dropout = 0.0,
                       int? outDim = null, int hyperLatentDim = 0, int hyperLayers = 2, int classes = 0,
                       int inputEmbedDim = 0, double inputEmbedScale = 25.0) : base(nameof(MlpDenoiser))
    {
        if (inputEmbedDim < 0 || inputEmbedDim % 2 != 0) throw new ArgumentException($"inputEmbedDim: expected 0 or an even number, got {inputEmbedDim}");
        this.inputEmbedDim = inputEmbedDim;
        this.inputEmbedScale = inputEmbedScale;
        exampleShape = [dim];
        if (hyperLatentDim > 0)
        {
            if (hyperLayers > blockCount + 1) throw new ArgumentException($"smd.hyper-layers: the MLP has {blockCount + 1} places for hyper layers, {hyperLayers} were asked for");
            var at = new List<int> { 0 };
            if (hyperLayers >= 2) at.Add(blockCount);
            for (int i = 1; at.Count < hyperLayers; i++) at.Add(i);
            hyperAt = at.Distinct().OrderBy(i => i).ToArray();
            hyper = new ModuleList<HyperLayer>(hyperAt.Select(_ => new HyperLayer(hidden, hyperLatentDim)).ToArray());
        }
        embDim = timeEmbedDim;
        temb1 = Linear(timeEmbedDim, hidden);
        temb2 = Linear(hidden, hidden);
        inProj = Linear(inputEmbedDim > 0 ? dim * inputEmbedDim : dim, hidden);
        blocks = new ModuleList<MlpBlock>(Enumerable.Range(0, blockCount).Select(_ => new MlpBlock(hidden, hidden, dropout)).ToArray());
        normOut = LayerNorm(hidden);
        outProj = Linear(hidden, outDim ?? dim);
        numClasses = classes;
        if (classes > 0) class_embedding = Embedding(classes + 1, hidden);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor t) => ForwardWithLatent(x, t, null);

    /// <summary>The forward pass with a latent vector z ([N, D]) for the hyper layers (SMD); z may be null when there are none.</summary>
    public override Tensor ForwardWithLatent(Tensor x, Tensor t, Tensor? z, Tensor? labels = null)
    {
        if ((hyper is null) != (z is null))
            throw new InvalidOperationException(hyper is null ? "this MLP has no hyper layers to condition on a latent" : "this MLP's hyper layers need a latent vector");
        using var scope = NewDisposeScope();
        var emb = Autocast.Linear(temb2, functional.silu(Autocast.Linear(temb1, TimeEmbedding.Sinusoidal(t, embDim).to_type(x.dtype))));
        emb = AddClassEmbedding(emb, class_embedding, numClasses, labels);
        var h = Autocast.Linear(inProj, inputEmbedDim > 0 ? EmbedInput(x) : x);
        int next = 0;
        h = Hyper(h, z, 0, ref next);
        for (int i = 0; i < blocks.Count; i++)
        {
            h = blocks[i].call(h, emb);
            h = Hyper(h, z, i + 1, ref next);
        }
        return Autocast.Output(Autocast.Linear(outProj, functional.silu(normOut.call(h))), x).MoveToOuterDisposeScope();
    }

    private Tensor EmbedInput(Tensor x) => FourierFeatures(x, inputEmbedDim, inputEmbedScale);

    /// <summary>
    /// [N, D] → [N, D·<paramref name="dim"/>]: for each coordinate x_d in turn, cos and sin of scale·x_d·ω_k at the
    /// time embedding's frequencies ω_k = 10000^(−k/(dim/2)) (<see cref="TimeEmbedding.Sinusoidal"/>), in x's dtype.
    /// </summary>
    public static Tensor FourierFeatures(Tensor x, int dim, double scale)
    {
        using var scope = NewDisposeScope();
        var scaled = x.Mul(scale);
        var columns = Enumerable.Range(0, (int)x.shape[1]).Select(d => TimeEmbedding.Sinusoidal(scaled.select(1, d), dim)).ToArray();
        return cat(columns, 1).to_type(x.dtype).MoveToOuterDisposeScope();
    }

    private Tensor Hyper(Tensor h, Tensor? z, int position, ref int next)
    {
        if (hyper is null || next >= hyperAt.Length || hyperAt[next] != position) return h;
        return hyper[next++].call(h, z!);
    }
}
