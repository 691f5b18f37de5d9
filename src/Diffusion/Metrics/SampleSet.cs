using Diffusion.Config;
using Diffusion.Data;
using static TorchSharp.torch;

namespace Diffusion.Metrics;

/// <summary>
/// The two sets an evaluation compares, loaded from what a user names: samples (an .npy array, a folder
/// of .npy files or of images, or a data spec for the real-versus-real baseline) and reference data
/// (a data spec, sized like the samples, as a random subset).
/// </summary>
public static class SampleSet
{
    /// <summary>
    /// Samples as float32 [N, …]: an .npy file, a folder of .npy files (concatenated in name order) or of
    /// images (sized like the reference, <paramref name="refShape"/>), or a data spec (a random subset of
    /// <paramref name="n"/>). At most the first <paramref name="n"/> are kept; fewer than two is an error.
    /// </summary>
    public static Tensor Load(string path, int? n, long[]? refShape, string? dataDir, long seed)
    {
        Tensor x;
        if (!File.Exists(path) && !Directory.Exists(path) && DataKinds.IsDataSpec(path))
        {
            // A random subset, not the first N: mnist's digits, for one, come sorted by class. Its stream
            // (seed + 1) differs from the reference subset's, so one spec on both sides gives two draws.
            var all = DataSources.Load(new DataConfig { Spec = path, DataDir = dataDir, ImageSize = refShape is { Length: 3 } ? (int)refShape[1] : 32 });
            using var ds = n is int m ? Subset(all, m, seed + 1) : all;
            x = ds.Data.clone();
        }
        else if (Directory.Exists(path)) x = LoadFolder(path, refShape);
        else
        {
            if (!File.Exists(path)) throw new UserError($"--samples {path}: no such file or folder");
            using var raw = Npy.Read(path);
            if (raw.dim() != 2 && raw.dim() != 4) throw new UserError($"--samples {path}: expected an N×D or N×C×H×W array, got shape ({string.Join(", ", raw.shape)})");
            x = raw.to_type(ScalarType.Float32);
        }
        if (x.shape[0] < 2) throw new UserError($"--samples {path}: need at least two samples, got {x.shape[0]}");
        if (n is int k && k < x.shape[0])
        {
            var cut = x.narrow(0, 0, k).clone();
            x.Dispose();
            x = cut;
        }
        return x;
    }

    private static Tensor LoadFolder(string path, long[]? refShape)
    {
        var npys = Directory.GetFiles(path, "*.npy").Order(StringComparer.Ordinal).ToList();
        if (npys.Count > 0)
        {
            var parts = npys.Select(Npy.Read).ToList();
            var shape0 = parts[0].shape.Skip(1).ToArray();
            var bad = npys.Zip(parts).FirstOrDefault(p => !p.Second.shape.Skip(1).SequenceEqual(shape0));
            if (bad.First is not null) throw new UserError($"--samples {path}: {bad.First} has examples of shape [{string.Join(", ", bad.Second.shape.Skip(1))}], {npys[0]} [{string.Join(", ", shape0)}]");
            var x = cat(parts.Select(p => p.to_type(ScalarType.Float32)).ToList(), 0);
            foreach (var p in parts) p.Dispose();
            return x;
        }
        int size = refShape is { Length: 3 } ? (int)refShape[1] : 299;
        int channels = refShape is { Length: 3 } ? (int)refShape[0] : 0;
        using var ds = ImageFolder.Load($"--samples {path}", path, size, channels);
        return ds.Data.clone();
    }

    /// <summary>
    /// Reference data from a spec: images sized like the samples when they are an .npy of images (so that
    /// images:DIR matches them, else 32), at most <paramref name="n"/> examples as a random subset.
    /// </summary>
    public static Dataset LoadReference(string spec, string? dataDir, string samplesPath, int n, long seed)
    {
        var all = DataSources.Load(new DataConfig { Spec = spec, DataDir = dataDir, ImageSize = ImageSize(samplesPath) ?? 32 });
        return Subset(all, n, seed);
    }

    /// <summary>
    /// At most n examples of the dataset: all of them (the same object), or a random subset drawn with the
    /// seed, in which case <paramref name="all"/> is disposed.
    /// </summary>
    public static Dataset Subset(Dataset all, int n, long seed)
    {
        if (all.Count <= n) return all;
        using var g = new Generator((ulong)seed + 1);
        using var idx = randperm(all.Count, generator: g).narrow(0, 0, n);
        var sub = new Dataset(all.Spec, all.Data.index_select(0, idx), all.Labels?.index_select(0, idx), all.Mixture);
        all.Dispose();
        return sub;
    }

    /// <summary>The side of the sample images when <paramref name="samplesPath"/> is an .npy of images; null otherwise.</summary>
    public static int? ImageSize(string samplesPath)
    {
        if (!File.Exists(samplesPath) || !samplesPath.EndsWith(".npy", StringComparison.OrdinalIgnoreCase)) return null;
        var shape = Npy.ReadShape(samplesPath);
        return shape.Length == 4 ? (int)shape[2] : null;
    }
}
