using static TorchSharp.torch;

namespace Diffusion.Sampling;

/// <summary>
/// Where a sampler's Gaussian draws come from. Two kinds:
/// <list type="bullet">
/// <item>one generator for the whole tensor (training, the consistency chain, diagnostics): a <see cref="Generator"/>
/// converts to this implicitly and draws exactly what <c>randn(shape, generator: g)</c> draws;</item>
/// <item>one generator per sample (<see cref="PerSample"/>): row r of a batch is sample <see cref="Indices"/>[r], and
/// its draws come from a generator seeded by <see cref="SampleSeed"/>(seed, index) alone. Sample i's x_T, its chain
/// noise (DDPM, DDIM η &gt; 0) and SMD's latent η are then the same whatever batch, shard or process it is drawn in:
/// every row sees the same sequence of calls, so its own generator is advanced the same way.</item>
/// </list>
/// </summary>
public sealed class NoiseSource : IDisposable
{
    private readonly Generator? single;
    private readonly bool ownsSingle;
    private Generator[] rows = [];
    private long[] indices = [];

    private NoiseSource(Generator? single, long seed, bool ownsSingle = false)
    {
        this.single = single;
        this.ownsSingle = ownsSingle;
        Seed = seed;
    }

    /// <summary>A source drawing whole tensors from <paramref name="g"/> (not owned), as the code before per-sample noise did; null stays null.</summary>
    [return: System.Diagnostics.CodeAnalysis.NotNullIfNotNull(nameof(g))]
    public static implicit operator NoiseSource?(Generator? g) => g is null ? null : new(g, 0);

    /// <summary>A source drawing whole tensors from <paramref name="g"/>, which it disposes with itself.</summary>
    public static NoiseSource Owning(Generator g) => new(g, 0, ownsSingle: true);

    /// <summary>A per-sample source for run seed <paramref name="seed"/>; choose the rows with <see cref="Use"/>.</summary>
    public static NoiseSource PerSample(long seed) => new(null, seed);

    /// <summary>The run seed of a per-sample source.</summary>
    public long Seed { get; }

    public bool IsPerSample => single is null;

    /// <summary>The sample index of each row of the current batch (per-sample sources).</summary>
    public IReadOnlyList<long> Indices => indices;

    /// <summary>
    /// The seed of sample <paramref name="index"/>'s generator: the (index + 1)-th output of SplitMix64 started at
    /// <paramref name="seed"/> (Steele, Lea and Flood 2014; the state advances by 0x9E3779B97F4A7C15 and is mixed by
    /// the finaliser below). A stable, documented function: changing it changes every sample of every run.
    /// </summary>
    public static ulong SampleSeed(long seed, long index)
    {
        if (index < 0) throw new ArgumentOutOfRangeException(nameof(index), $"sample index must be zero or more, got {index}");
        ulong z = unchecked((ulong)seed + ((ulong)index + 1) * 0x9E3779B97F4A7C15UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }

    /// <summary>Makes the rows of the next batch samples <paramref name="sampleIndices"/>, each with a fresh generator of its own.</summary>
    public void Use(IReadOnlyList<long> sampleIndices)
    {
        if (!IsPerSample) throw new InvalidOperationException("Use applies to per-sample noise sources only");
        DisposeRows();
        indices = sampleIndices.ToArray();
        rows = indices.Select(i => new Generator(SampleSeed(Seed, i))).ToArray();
    }

    /// <summary>
    /// N(0, I) of <paramref name="shape"/>. Per sample: shape[0] must be the batch's row count, or a multiple m of it
    /// (a wrapper that asks the network for several copies of the batch at once, [x; x; …]); row j·B + r is then the
    /// j-th draw of sample r's generator.
    /// </summary>
    public Tensor Randn(long[] shape, ScalarType dtype, Device device)
    {
        if (single is not null) return randn(shape, dtype: dtype, device: device, generator: single);
        int b = rows.Length;
        if (b == 0 || shape.Length == 0 || shape[0] % b != 0)
            throw new InvalidOperationException($"per-sample noise for {b} rows cannot fill a tensor of shape [{string.Join(", ", shape)}]");
        long copies = shape[0] / b;
        var rowShape = shape[1..];
        var parts = new Tensor[shape[0]];
        try
        {
            for (int r = 0; r < b; r++)
                for (long j = 0; j < copies; j++) parts[j * b + r] = randn(rowShape, dtype: dtype, device: device, generator: rows[r]);
            return stack(parts);
        }
        finally
        {
            foreach (var p in parts) p?.Dispose();
        }
    }

    /// <summary>N(0, I) like <paramref name="like"/> from <paramref name="noise"/>, or from libtorch's default generator when null.</summary>
    public static Tensor RandnLike(NoiseSource? noise, Tensor like) =>
        noise is null ? randn(like.shape, dtype: like.dtype, device: like.device) : noise.Randn(like.shape, like.dtype, like.device);

    private void DisposeRows()
    {
        foreach (var g in rows) g.Dispose();
        rows = [];
    }

    /// <summary>Frees the per-sample generators, and a single generator when it was given to <see cref="Owning"/>.</summary>
    public void Dispose()
    {
        DisposeRows();
        if (ownsSingle) single?.Dispose();
    }
}
