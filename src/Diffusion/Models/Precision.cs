using TorchSharp.Modules;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Models;

/// <summary>The arithmetic a network's forward and backward passes use.</summary>
public enum Precision
{
    /// <summary>Everything in float32.</summary>
    Float32,
    /// <summary>
    /// Convolutions, linear layers and attention in bfloat16 (inputs and weights cast at the layer, outputs cast back to
    /// float32); weights, gradients, optimizer state, EMA, loss and normalisation statistics stay float32.
    /// </summary>
    Bf16Mixed,
}

/// <summary>Names, parsing and the default choice of <see cref="Precision"/>.</summary>
public static class Precisions
{
    public const string Auto = "auto";
    public static readonly string[] Names = ["float32", "bf16-mixed"];

    public static string Name(Precision p) => p == Precision.Bf16Mixed ? "bf16-mixed" : "float32";

    /// <summary>Parses float32 or bf16-mixed; <paramref name="what"/> names the input in the error.</summary>
    public static Precision Parse(string name, string what) => name switch
    {
        "float32" => Precision.Float32,
        "bf16-mixed" => Precision.Bf16Mixed,
        _ => throw new UserError($"{what}: expected auto, float32 or bf16-mixed, got '{name}'"),
    };

    /// <summary>
    /// A setting (auto, float32 or bf16-mixed) for a model type: auto is bf16-mixed for the UNet on a CPU with native
    /// bfloat16 arithmetic (<see cref="CpuBf16"/>), float32 otherwise. The MLP stays float32 under auto: its layers are
    /// too small for bfloat16 to pay for the casts (bench/precision.md).
    /// </summary>
    public static Precision Resolve(string setting, string modelType) =>
        setting == Auto ? (modelType == "unet" && CpuBf16 is not null ? Precision.Bf16Mixed : Precision.Float32) : Parse(setting, "precision");

    /// <summary>The CPU feature that makes bfloat16 fast here (avx512_bf16 or amx_bf16, from /proc/cpuinfo), or null.</summary>
    public static string? CpuBf16 { get; } = DetectBf16();

    private static string? DetectBf16()
    {
        try
        {
            if (!File.Exists("/proc/cpuinfo")) return null;
            var flags = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal));
            if (flags is null) return null;
            var set = flags[(flags.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
            return set.Contains("amx_bf16") ? "AMX-BF16" : set.Contains("avx512_bf16") ? "AVX512_BF16" : null;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>A sentence for logs: the precision and why.</summary>
    public static string Describe(Precision p) => p == Precision.Bf16Mixed
        ? $"bf16-mixed ({(CpuBf16 is null ? "no native bfloat16 on this CPU: emulated, slow" : $"CPU has {CpuBf16}")})"
        : "float32";
}

/// <summary>
/// Mixed precision at the layer, in place of the autocast TorchSharp does not have. Within <see cref="Enter"/>(bf16-mixed)
/// on the current thread, the project's convolutions (<see cref="SafeConv2d"/>), linear layers called through
/// <see cref="Linear"/> and attention products cast their inputs and weights to bfloat16 and return bfloat16, as
/// PyTorch's autocast does; GroupNorm and LayerNorm take the bfloat16 activations with their float32 weights and
/// compute their statistics in float32 (libtorch's mixed-type kernels); the networks cast their output back to
/// float32, so the loss is float32. Autograd records the casts, so gradients reach the float32 weights as float32.
/// </summary>
public static class Autocast
{
    [ThreadStatic] private static bool active;

    /// <summary>Whether layers compute in bfloat16 on this thread.</summary>
    public static bool Active => active;

    public static Scope Enter(Precision p)
    {
        var s = new Scope(active);
        active = p == Precision.Bf16Mixed;
        return s;
    }

    /// <summary>Restores the previous state when disposed.</summary>
    public readonly struct Scope(bool previous) : IDisposable
    {
        public void Dispose() => active = previous;
    }

    /// <summary>x in bfloat16 (x itself, aliased, when it already is).</summary>
    public static Tensor Bf16(Tensor x) => x.dtype == ScalarType.BFloat16 ? x.alias() : x.to_type(ScalarType.BFloat16);

    /// <summary>The linear layer <paramref name="layer"/> applied to x, in bfloat16 when <see cref="Active"/>.</summary>
    public static Tensor Linear(Linear layer, Tensor x)
    {
        if (!active) return layer.call(x);
        using var xb = Bf16(x);
        using var wb = layer.weight!.to_type(ScalarType.BFloat16);
        using var bb = layer.bias?.to_type(ScalarType.BFloat16);
        return nn.functional.linear(xb, wb, bb);
    }

    /// <summary>
    /// Under bf16-mixed, attention as matmul–softmax–matmul (the scores' softmax in float32, as autocast computes
    /// softmax) instead of libtorch's fused kernel, which is 4–5× slower in bfloat16 than in float32 at the demo UNet's
    /// 7×7 shape (bench/precision.md). Off by default for now: it changes bf16-mixed arithmetic, and the Fashion-MNIST
    /// study (issue 12) must keep the arithmetic it started with; bench/layers measures it. Per thread, like <see cref="Enter"/>.
    /// </summary>
    public static bool MatmulAttentionInBf16 { get => matmulAttention; set => matmulAttention = value; }
    [ThreadStatic] private static bool matmulAttention;

    /// <summary>Scaled dot-product attention of q, k, v ([B, heads, L, d]), in bfloat16 when <see cref="Active"/>.</summary>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v)
    {
        if (!active) return nn.functional.scaled_dot_product_attention(q, k, v);
        using var qb = Bf16(q);
        using var kb = Bf16(k);
        using var vb = Bf16(v);
        if (!MatmulAttentionInBf16) return nn.functional.scaled_dot_product_attention(qb, kb, vb);
        using var scope = NewDisposeScope();
        var scores = matmul(qb, kb.transpose(-1, -2)).to_type(ScalarType.Float32).Mul(1.0 / Math.Sqrt(q.shape[^1]));
        return matmul(scores.softmax(-1).to_type(ScalarType.BFloat16), vb).MoveToOuterDisposeScope();
    }

    /// <summary>A network's output in the dtype of its input (float32 after bfloat16 layers).</summary>
    public static Tensor Output(Tensor y, Tensor input) => y.dtype == input.dtype ? y : y.to_type(input.dtype);
}
