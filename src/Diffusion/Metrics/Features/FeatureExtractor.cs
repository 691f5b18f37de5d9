using static TorchSharp.torch;

namespace Diffusion.Metrics.Features;

/// <summary>
/// Maps examples (vectors [N, D] or images [N, C, H, W], values in [−1, 1] as the project stores
/// them) to feature vectors [N, F] in which sample-quality metrics are computed. The name is printed
/// beside every score, because a FID in one feature space says nothing about a FID in another.
/// </summary>
public interface IFeatureExtractor : IDisposable
{
    /// <summary>"inception-fid", "classifier:fashion-mnist", "raw", …</summary>
    string Name { get; }

    /// <summary>
    /// What partial evaluations compare before they are merged: the name, and for extractors with weights the SHA-256 of
    /// their parameters (two classifiers trained on other data share a name, not an identity).
    /// </summary>
    string Identity => Name;

    /// <summary>Features of the rows of <paramref name="x"/> as float32 [N, F]; <paramref name="progress"/> gets (done, total) rows.</summary>
    Tensor Extract(Tensor x, Action<long, long>? progress = null);
}

/// <summary>The identity of an extractor with weights: "NAME sha256:HEX" over its state dict (names, shapes, values).</summary>
internal static class ExtractorIdentity
{
    public static string Of(string name, TorchSharp.torch.nn.Module module)
    {
        using var h = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var (key, t) in module.state_dict().OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            h.AppendData(System.Text.Encoding.UTF8.GetBytes(key + "\n"));
            EvalPartials.Append(h, t);
        }
        return $"{name} sha256:{Convert.ToHexStringLower(h.GetHashAndReset())}";
    }
}

/// <summary>Runs a per-batch feature function over a large tensor without gradients, one dispose scope per batch.</summary>
internal static class Batched
{
    public static Tensor Map(Tensor x, int batch, Func<Tensor, Tensor> f, Action<long, long>? progress)
    {
        long n = x.shape[0];
        var parts = new List<Tensor>();
        using (no_grad())
        {
            for (long i = 0; i < n; i += batch)
            {
                using var scope = NewDisposeScope();
                var y = f(x.narrow(0, i, Math.Min(batch, n - i)));
                parts.Add(y.to_type(ScalarType.Float32).contiguous().MoveToOuterDisposeScope());
                progress?.Invoke(Math.Min(i + batch, n), n);
            }
        }
        if (parts.Count == 0) return zeros(0, 0);
        var all = cat(parts, 0);
        foreach (var p in parts) p.Dispose();
        return all;
    }
}
