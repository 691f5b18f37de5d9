using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using Diffusion.Util;

namespace Diffusion.Models;

/// <summary>
/// A hypernetwork-conditioned residual layer of soft mixture denoising (METHODS.md §5). At each
/// pixel (or for each vector) with features h ∈ ℝ^C and latent z ∈ ℝ^D:
/// u_i = Linear_i(z), M_i = u_i·u_iᵀ + softplus(s_i)·I (i = 1, 2), h ← h + W_out·M₂·M₁·W_in·h.
/// M_i·v is computed as u_i·(u_iᵀv) + softplus(s_i)·v, never forming the D×D matrix. W_out starts at
/// zero, so the layer starts as the identity. Features are channel 1 of h and z ([N, C, H, W] with
/// [N, D, H, W], or [N, C] with [N, D]).
/// </summary>
public sealed class HyperLayer : Module<Tensor, Tensor, Tensor>
{
    private readonly Linear wIn, wOut, u1, u2;
#pragma warning disable IDE1006
    public Parameter s1, s2;
#pragma warning restore IDE1006

    public HyperLayer(int channels, int latentDim) : base(nameof(HyperLayer))
    {
        wIn = Linear(channels, latentDim, hasBias: false);
        wOut = Linear(latentDim, channels);
        u1 = Linear(latentDim, latentDim);
        u2 = Linear(latentDim, latentDim);
        s1 = new Parameter(zeros(1));
        s2 = new Parameter(zeros(1));
        using (no_grad()) { init.zeros_(wOut.weight!); init.zeros_(wOut.bias!); }
        RegisterComponents();
    }

    public override Tensor forward(Tensor h, Tensor z)
    {
        using var scope = NewDisposeScope();
        bool map = h.dim() == 4;
        var hf = h.dtype == ScalarType.Float32 ? h : h.to_type(ScalarType.Float32); // float32 whatever the precision
        var hl = map ? hf.permute(0, 2, 3, 1) : hf;   // features last
        var zl = map ? z.permute(0, 2, 3, 1) : z;
        var v = wIn.call(hl);
        var a = u1.call(zl);
        v = (a * (a * v).sum(-1, keepdim: true)).Add(functional.softplus(s1) * v);
        var b = u2.call(zl);
        v = (b * (b * v).sum(-1, keepdim: true)).Add(functional.softplus(s2) * v);
        var o = wOut.call(v);
        if (map) o = o.permute(0, 3, 1, 2);
        return hf.Add(o).to_type(h.dtype).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Soft mixture denoising (METHODS.md §5): the backward step is a continuous mixture of Gaussians,
/// realised by a latent z = g_ξ(x_t, η, t) with η ~ N(0, I) of x's shape, which conditions the
/// denoiser through <see cref="HyperLayer"/>s. For images g_ξ is a small UNet on concat[x_t, η]
/// giving a per-pixel latent map (default 100 channels); for vectors an MLP giving a latent vector
/// (default 16). η is an input of the network (<see cref="ForwardWithNoise"/>); the denoiser stack draws it
/// (<see cref="NetworkDenoiser"/>, from the generator it is given): one η per example in training, a fresh η
/// at every step of every sampler, so a deterministic sampler is deterministic given that generator's seed.
/// </summary>
/// <remarks>
/// Caution (METHODS.md §5): with a squared-error loss and η independent of the target, the loss
/// minimiser over the mean is E[target | x_t] for every z, so the single-η objective gives the latent
/// no incentive to be used; measured gains may come from capacity. The study reports what it finds.
/// </remarks>
public sealed class SmdNetwork : DenoiserNetwork
{
    /// <summary>The registry entry (<see cref="Training.Remedies"/>).</summary>
    public static readonly Training.Remedy Remedy = new("smd", ["soft-mixture-denoising"], "Gaussian bottleneck (soft mixture denoising)",
        ["smd.enabled", "smd.latent-dim", "smd.hyper-layers"], ["smd.enabled=true"], [],
        c => c.Smd.Enabled, c => $"smd(latent-dim={c.Smd.LatentDimFor(c.Model.Type)}, hyper-layers={c.Smd.HyperLayers})");

    private readonly DenoiserNetwork latent;
    private readonly DenoiserNetwork backbone;

    public override long[] ExampleShape => backbone.ExampleShape;

    public SmdNetwork(DenoiserNetwork latentNetwork, DenoiserNetwork conditionedBackbone) : base(nameof(SmdNetwork))
    {
        latent = latentNetwork;
        backbone = conditionedBackbone;
        RegisterComponents();
    }

    public override bool TakesNoise => true;

    /// <summary>The backbone's classes: a class-conditional SMD network tells the backbone the class (g_ξ sees x_t, η and t only).</summary>
    public override int NumClasses => backbone.NumClasses;

    /// <summary>Not defined without η: call <see cref="ForwardWithNoise"/>, or go through a <see cref="NetworkDenoiser"/>, which draws η.</summary>
    public override Tensor forward(Tensor x, Tensor t) =>
        throw new InvalidOperationException("the soft-mixture network needs its noise input η: call ForwardWithNoise or sample through DenoiserStack");

    /// <summary>The denoiser's output for the noise input η (same shape as x).</summary>
    public override Tensor ForwardWithNoise(Tensor x, Tensor t, Tensor eta, Tensor? labels = null)
    {
        using var scope = NewDisposeScope();
        var z = latent.call(cat([x, eta], 1), t);
        return backbone.ForwardWithLatent(x, t, z, labels).MoveToOuterDisposeScope();
    }
}
