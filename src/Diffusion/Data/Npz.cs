using System.IO.Compression;
using static TorchSharp.torch;

namespace Diffusion.Data;

/// <summary>
/// NumPy's .npz archives: a zip file of .npy members, stored or deflated (what <c>np.savez</c> and
/// <c>np.savez_compressed</c> write). Used for saved reference statistics (<c>mu</c>, <c>sigma</c>, as
/// pytorch-fid writes them) and for weight files converted from PyTorch (one member per state-dict
/// name). Members that are not .npy files (e.g. <c>meta.json</c>) are kept as raw bytes.
/// </summary>
public static class Npz
{
    /// <summary>Every .npy member as a tensor, keyed by its name without ".npy"; a malformed archive is one clear error.</summary>
    public static Dictionary<string, Tensor> Read(string path) => ReadAll(path).Arrays;

    /// <summary>The .npy members as tensors and the other members as raw bytes.</summary>
    public static (Dictionary<string, Tensor> Arrays, Dictionary<string, byte[]> Other) ReadAll(string path)
    {
        if (!File.Exists(path)) throw new UserError($"{path}: file not found");
        var arrays = new Dictionary<string, Tensor>();
        var other = new Dictionary<string, byte[]>();
        try
        {
            using var zip = ZipFile.OpenRead(path);
            foreach (var e in zip.Entries)
            {
                using var s = e.Open();
                using var ms = new MemoryStream();
                s.CopyTo(ms);
                var bytes = ms.ToArray();
                if (e.FullName.EndsWith(".npy", StringComparison.Ordinal))
                    arrays[e.FullName[..^4]] = Npy.FromBytes($"{path}:{e.FullName}", bytes);
                else other[e.FullName] = bytes;
            }
        }
        catch (InvalidDataException ex)
        {
            foreach (var t in arrays.Values) t.Dispose();
            throw new UserError($"{path}: not a readable .npz archive ({ex.Message.ReplaceLineEndings(" ")})");
        }
        catch (UserError)
        {
            foreach (var t in arrays.Values) t.Dispose();
            throw;
        }
        return (arrays, other);
    }

    /// <summary>Writes the arrays (float32 or float64) and optional raw members atomically, uncompressed as np.savez does.</summary>
    public static void Write(string path, IEnumerable<(string Name, Tensor Value)> arrays, IEnumerable<(string Name, byte[] Bytes)>? other = null)
    {
        Util.AtomicFile.Write(path, s =>
        {
            using var zip = new ZipArchive(s, ZipArchiveMode.Create, leaveOpen: true);
            foreach (var (name, t) in arrays) Add(zip, name + ".npy", Npy.ToBytes(t));
            foreach (var (name, bytes) in other ?? []) Add(zip, name, bytes);
        });
    }

    private static void Add(ZipArchive zip, string name, byte[] bytes)
    {
        var e = zip.CreateEntry(name, CompressionLevel.NoCompression);
        using var es = e.Open();
        es.Write(bytes);
    }
}
