using System.Globalization;

namespace Diffusion.Sampling;

/// <summary>
/// Shard <see cref="K"/> of <see cref="S"/> (0 ≤ K &lt; S; K is 0-based, as Kubernetes' JOB_COMPLETION_INDEX and a
/// Slurm array <c>--array=0-(S−1)</c> give it). A shard takes a <b>contiguous</b> range of the N sample indices,
/// [⌊K·N/S⌋, ⌊(K+1)·N/S⌋): shard sizes differ by at most one, a part is described by its first index and count, the
/// merged file is the parts concatenated in K order, and a missing or failed shard is one gap that is easy to name.
/// (Strided indices K, K+S, … would balance equally well but interleave on merge and need an index list per part.)
/// </summary>
public readonly record struct Shard(int K, int S)
{
    /// <summary>The whole run as one shard.</summary>
    public static readonly Shard All = new(0, 1);

    /// <summary>Parses "k/S"; <paramref name="what"/> names the input in the one-line error.</summary>
    public static Shard Parse(string text, string what = "--shard")
    {
        var parts = text.Split('/');
        if (parts.Length != 2
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int k)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int s))
            throw new UserError($"{what} {text}: expected k/S with whole numbers 0 ≤ k < S (e.g. 0/4)");
        if (s < 1 || k >= s) throw new UserError($"{what} {text}: expected 0 ≤ k < S and S ≥ 1, got k = {k}, S = {s}");
        return new Shard(k, s);
    }

    /// <summary>The first index and the count of this shard's samples among <paramref name="n"/>.</summary>
    public (long Start, long Count) Range(long n)
    {
        long start = Bound(K, n), end = Bound(K + 1, n);
        return (start, end - start);
    }

    private long Bound(long k, long n) => (long)((System.Numerics.BigInteger)k * n / S);

    public override string ToString() => $"{K}/{S}";
}
