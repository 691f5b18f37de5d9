using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Util;

/// <summary>
/// Tensor arithmetic with numbers, written so that the TorchSharp <see cref="Scalar"/> holding the number
/// outlives the native call that reads it.
/// </summary>
/// <remarks>
/// TorchSharp turns a number into a <see cref="Scalar"/> implicitly (<c>t * 0.5</c>, <c>t.mul_(d)</c>, and even
/// <c>a + b</c> of two tensors, whose <c>add</c> passes an implicit alpha of 1) and then hands libtorch only the
/// Scalar's raw handle. Once the handle is read the Scalar object is unreachable, so a garbage collection during
/// the call can let its finalizer free the native value while libtorch is still reading it. In long runs this
/// shows as an <c>ExternalException</c> from <c>Scalar.h</c> (<c>toFloat</c>) — or, worse, as a wrong number read
/// silently. (TorchSharp's pull requests 1434 and 1496, still open, dispose such Scalars inside the library.)
/// Here every Scalar is either a static field, never finalized, or held by <c>using</c> until the call has
/// returned. Each method runs the same libtorch kernel with the same Scalar (same value and type) as the
/// TorchSharp operator it replaces, so results are bit-identical; <c>ScalarSafetyTests</c> checks that no code
/// of ours calls a TorchSharp member that makes an implicit Scalar.
/// </remarks>
public static class ScalarOps
{
    // TorchSharp's own add(Tensor) and add(Scalar) pass the int 1 as alpha, and its arange(stop) starts at the
    // int 0 with step 1: the same Scalars here keep the results bit-identical. Static, so never finalized.
    internal static readonly Scalar One = 1.ToScalar();
    private static readonly Scalar Zero = 0.ToScalar();

    /// <summary>a + b (TorchSharp's <c>a + b</c>).</summary>
    public static Tensor Add(this Tensor a, Tensor b) => a.add(b, One);

    /// <summary>a += b in place.</summary>
    public static Tensor AddInPlace(this Tensor a, Tensor b) => a.add_(b, One);

    /// <summary>a + alpha·b.</summary>
    public static Tensor Add(this Tensor a, Tensor b, double alpha)
    {
        using var s = alpha.ToScalar();
        return a.add(b, s);
    }

    /// <summary>a += alpha·b in place.</summary>
    public static Tensor AddInPlace(this Tensor a, Tensor b, double alpha)
    {
        using var s = alpha.ToScalar();
        return a.add_(b, s);
    }

    /// <summary>a + v.</summary>
    public static Tensor Add(this Tensor a, double v)
    {
        using var s = v.ToScalar();
        return a.add(s, One);
    }

    /// <summary>a + v with an integer v (keeps integer tensors integer).</summary>
    public static Tensor Add(this Tensor a, long v)
    {
        using var s = v.ToScalar();
        return a.add(s, One);
    }

    /// <summary>a += v in place.</summary>
    public static Tensor AddInPlace(this Tensor a, double v)
    {
        using var s = v.ToScalar();
        return a.add_(s, One);
    }

    /// <summary>a − v.</summary>
    public static Tensor Sub(this Tensor a, double v)
    {
        using var s = v.ToScalar();
        return a.sub(s);
    }

    /// <summary>a − v with an integer v.</summary>
    public static Tensor Sub(this Tensor a, long v)
    {
        using var s = v.ToScalar();
        return a.sub(s);
    }

    /// <summary>v − a, computed as TorchSharp's <c>v - a</c> is: (−a) + v.</summary>
    public static Tensor RSub(this Tensor a, double v)
    {
        using var s = v.ToScalar();
        using var negated = a.negative();
        return negated.add(s, One);
    }

    /// <summary>v − a with an integer v.</summary>
    public static Tensor RSub(this Tensor a, long v)
    {
        using var s = v.ToScalar();
        using var negated = a.negative();
        return negated.add(s, One);
    }

    /// <summary>a · v.</summary>
    public static Tensor Mul(this Tensor a, double v)
    {
        using var s = v.ToScalar();
        return a.mul(s);
    }

    /// <summary>a · v with an integer v.</summary>
    public static Tensor Mul(this Tensor a, long v)
    {
        using var s = v.ToScalar();
        return a.mul(s);
    }

    /// <summary>a ·= v in place.</summary>
    public static Tensor MulInPlace(this Tensor a, double v)
    {
        using var s = v.ToScalar();
        return a.mul_(s);
    }

    /// <summary>a / v.</summary>
    public static Tensor Div(this Tensor a, double v)
    {
        using var s = v.ToScalar();
        return a.div(s);
    }

    /// <summary>a / v with an integer v (true division, as TorchSharp's <c>a / v</c>).</summary>
    public static Tensor Div(this Tensor a, long v)
    {
        using var s = v.ToScalar();
        return a.div(s);
    }

    /// <summary>a /= v in place.</summary>
    public static Tensor DivInPlace(this Tensor a, double v)
    {
        using var s = v.ToScalar();
        return a.div_(s);
    }

    /// <summary>a /= v in place with an integer v.</summary>
    public static Tensor DivInPlace(this Tensor a, long v)
    {
        using var s = v.ToScalar();
        return a.div_(s);
    }

    /// <summary>a ← a^v in place with an integer exponent.</summary>
    public static Tensor PowInPlace(this Tensor a, long v)
    {
        using var s = v.ToScalar();
        return a.pow_(s);
    }

    /// <summary>Sets every element of a to v (fill_).</summary>
    public static Tensor Fill(this Tensor a, double v)
    {
        using var s = v.ToScalar();
        return a.fill_(s);
    }

    /// <summary>a ≥ v elementwise with an integer v (a bool tensor).</summary>
    public static Tensor Ge(this Tensor a, long v)
    {
        using var s = v.ToScalar();
        return a.ge(s);
    }

    /// <summary>a mod v (TorchSharp's <c>a % v</c>: remainder).</summary>
    public static Tensor Remainder(this Tensor a, long v)
    {
        using var s = v.ToScalar();
        return a.remainder(s);
    }

    /// <summary>a^v.</summary>
    public static Tensor Pow(this Tensor a, double v)
    {
        using var s = v.ToScalar();
        return a.pow(s);
    }

    /// <summary>a^v with an integer exponent.</summary>
    public static Tensor Pow(this Tensor a, long v)
    {
        using var s = v.ToScalar();
        return a.pow(s);
    }

    /// <summary>min(max(a, lo), hi).</summary>
    public static Tensor Clamp(this Tensor a, double lo, double hi)
    {
        using var l = lo.ToScalar();
        using var h = hi.ToScalar();
        return a.clamp(l, h);
    }

    /// <summary>max(a, lo).</summary>
    public static Tensor ClampMin(this Tensor a, double lo)
    {
        using var l = lo.ToScalar();
        return a.clamp_min(l);
    }

    /// <summary>a &lt; v elementwise (a bool tensor).</summary>
    public static Tensor Lt(this Tensor a, double v)
    {
        using var s = v.ToScalar();
        return a.lt(s);
    }

    /// <summary>0, 1, …, n − 1 (torch.arange(n); int64 unless <paramref name="dtype"/> says otherwise).</summary>
    public static Tensor Arange(long n, ScalarType? dtype = null, Device? device = null)
    {
        using var stop = n.ToScalar();
        return torch.arange(Zero, stop, One, dtype, device);
    }

    /// <summary>a + b·c elementwise with weight v: a + v·b·c (addcmul).</summary>
    public static Tensor AddCMulInPlace(this Tensor a, Tensor b, Tensor c, double v)
    {
        using var s = v.ToScalar();
        return a.addcmul_(b, c, s);
    }

    /// <summary>a + v·b/c in place (addcdiv).</summary>
    public static Tensor AddCDivInPlace(this Tensor a, Tensor b, Tensor c, double v)
    {
        using var s = v.ToScalar();
        return a.addcdiv_(b, c, s);
    }
}
