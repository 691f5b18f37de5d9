using Diffusion.Data;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Training;

/// <summary>
/// Which examples each training step sees. Epoch e is a permutation drawn from a generator seeded with
/// (seed, e); step s takes the next batch-size positions of the concatenated epochs, so the order
/// depends on nothing but (seed, s) and a resumed run sees the batches an uninterrupted one would.
/// </summary>
public sealed class DataOrder(Dataset data, int batchSize, long seed, bool horizontalFlip)
{
    private long cachedEpoch = -1;
    private long[] cachedPerm = [];

    /// <summary>Indices into the dataset of the examples of step <paramref name="s"/>.</summary>
    public long[] BatchIndices(long s)
    {
        long n = data.Count, b = batchSize;
        var idx = new long[b];
        long pos = s * b;
        for (int i = 0; i < b; i++, pos++)
        {
            long epoch = pos / n;
            if (epoch != cachedEpoch)
            {
                using var g = new Generator((ulong)unchecked(seed * 1_000_003 + epoch + 1));
                using var p = randperm(n, generator: g);
                cachedPerm = p.data<long>().ToArray();
                cachedEpoch = epoch;
            }
            idx[i] = cachedPerm[pos % n];
        }
        return idx;
    }

    /// <summary>The labels of the examples of step <paramref name="s"/> (the data must have labels).</summary>
    public Tensor BatchLabels(long s)
    {
        using var idx = tensor(BatchIndices(s), dtype: ScalarType.Int64);
        return data.Labels!.index_select(0, idx);
    }

    /// <summary>
    /// The examples of step <paramref name="s"/>; with horizontal flips on (images only), each is mirrored
    /// with probability ½, drawn from <paramref name="gen"/> (the training generator).
    /// </summary>
    public Tensor Batch(long s, Generator gen)
    {
        using var idx = tensor(BatchIndices(s), dtype: ScalarType.Int64);
        var x0 = data.Data.index_select(0, idx);
        if (horizontalFlip && data.IsImage)
        {
            var flip = rand([x0.shape[0]], generator: gen).Lt(0.5).reshape(-1, 1, 1, 1);
            x0 = where(flip, x0.flip(3), x0);
        }
        return x0;
    }
}
