using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

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
        var r = fc1.call(norm.call(h)) + embProj.call(functional.silu(emb));
        r = fc2.call(dropout.call(functional.silu(r)));
        return (h + r).MoveToOuterDisposeScope();
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

    public override long[] ExampleShape => exampleShape;

    public MlpDenoiser(int dim, int hidden = 256, int blockCount = 4, int timeEmbedDim = 128, double dropout = 0.0) : base(nameof(MlpDenoiser))
    {
        exampleShape = [dim];
        embDim = timeEmbedDim;
        temb1 = Linear(timeEmbedDim, hidden);
        temb2 = Linear(hidden, hidden);
        inProj = Linear(dim, hidden);
        blocks = new ModuleList<MlpBlock>(Enumerable.Range(0, blockCount).Select(_ => new MlpBlock(hidden, hidden, dropout)).ToArray());
        normOut = LayerNorm(hidden);
        outProj = Linear(hidden, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor t)
    {
        using var scope = NewDisposeScope();
        var emb = temb2.call(functional.silu(temb1.call(TimeEmbedding.Sinusoidal(t, embDim).to_type(x.dtype))));
        var h = inProj.call(x);
        foreach (var b in blocks) h = b.call(h, emb);
        return outProj.call(functional.silu(normOut.call(h))).MoveToOuterDisposeScope();
    }
}
