using Diffusion.Models;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Training;

/// <summary>
/// Exponential moving average of a network's parameters, kept in a second network of the same
/// architecture (the one sampled from). With warm-up the decay at update n is
/// min(decay, (1 + n)/(10 + n)), so that short runs are not dominated by the initial weights.
/// Updates are in place (no allocation per step).
/// </summary>
public sealed class Ema(DenoiserNetwork shadow, double decay, bool warmup) : IDisposable
{
    public DenoiserNetwork Shadow { get; } = shadow;
    public double Decay { get; } = decay;
    public bool Warmup { get; } = warmup;

    /// <summary>Decay used at update number <paramref name="n"/> (0-based).</summary>
    public double DecayAt(long n) => Warmup ? Math.Min(Decay, (1.0 + n) / (10.0 + n)) : Decay;

    /// <summary>Copies the model's parameters and buffers into the shadow.</summary>
    public void CopyFrom(DenoiserNetwork model)
    {
        using var _ = no_grad();
        foreach (var (dst, src) in Pairs(model)) dst.copy_(src);
    }

    /// <summary>shadow ← d·shadow + (1 − d)·model with d = <see cref="DecayAt"/>(n).</summary>
    public void Update(DenoiserNetwork model, long n)
    {
        double d = DecayAt(n);
        using var _ = no_grad();
        foreach (var (dst, src) in Pairs(model))
        {
            if (dst.is_floating_point()) dst.MulInPlace(d).AddInPlace(src, 1 - d);
            else dst.copy_(src);
        }
    }

    private DenoiserNetwork? pairedWith;
    private List<(Tensor Dst, Tensor Src)> pairs = [];

    // (shadow tensor, model tensor) by state-dict name, built once per model.
    private List<(Tensor Dst, Tensor Src)> Pairs(DenoiserNetwork model)
    {
        if (ReferenceEquals(pairedWith, model)) return pairs;
        var src = model.state_dict();
        pairs = [];
        foreach (var (name, dst) in Shadow.state_dict())
        {
            if (!src.TryGetValue(name, out var s)) throw new InvalidOperationException($"EMA: model has no tensor '{name}'");
            pairs.Add((dst, s));
        }
        pairedWith = model;
        return pairs;
    }

    public void Dispose() => Shadow.Dispose();
}
