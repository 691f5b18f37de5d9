using TorchSharp;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Models;

/// <summary>Sinusoidal embedding of a real-valued time (Transformer/ADM style), [cos | sin] halves.</summary>
public static class TimeEmbedding
{
    /// <summary>
    /// Embeds times <paramref name="t"/> (shape [N], any real values in the network's units, usually
    /// 0 … T−1) into [N, dim]: cos(t·ω_k) and sin(t·ω_k) with ω_k = maxPeriod^(−k/(dim/2)).
    /// </summary>
    public static Tensor Sinusoidal(Tensor t, int dim, double maxPeriod = 10000.0)
    {
        using var scope = NewDisposeScope();
        int half = dim / 2;
        var freqs = exp(ScalarOps.Arange(half, ScalarType.Float32, t.device).Mul(-Math.Log(maxPeriod) / half));
        var args = t.to_type(ScalarType.Float32).reshape(-1, 1) * freqs.reshape(1, -1);
        var emb = cat([cos(args), sin(args)], dim: 1);
        if (dim % 2 == 1) emb = nn.functional.pad(emb, [0, 1]);
        return emb.MoveToOuterDisposeScope();
    }
}
