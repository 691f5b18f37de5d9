using System.IO.Compression;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Data;

/// <summary>
/// Reader of the IDX format of MNIST and Fashion-MNIST (optionally gzipped): a big-endian magic
/// 0x0000TTDD (TT = 0x08 for unsigned bytes, DD = number of dimensions), DD big-endian int32 sizes,
/// then the data.
/// </summary>
public static class Idx
{
    /// <summary>Reads an unsigned-byte IDX file into a uint8 tensor of its shape. A wrong or truncated file is one clear error.</summary>
    public static Tensor Read(string path)
    {
        if (!File.Exists(path)) throw new UserError($"{path}: file not found");
        byte[] bytes;
        try
        {
            using var fs = File.OpenRead(path);
            if (path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase))
            {
                using var gz = new GZipStream(fs, CompressionMode.Decompress);
                using var ms = new MemoryStream();
                gz.CopyTo(ms);
                bytes = ms.ToArray();
            }
            else
            {
                using var ms = new MemoryStream();
                fs.CopyTo(ms);
                bytes = ms.ToArray();
            }
        }
        catch (InvalidDataException) { throw new UserError($"{path}: corrupt gzip data"); }
        catch (IOException e) { throw new UserError($"{path}: cannot read ({e.Message})"); }
        return Parse(bytes, path);
    }

    public static Tensor Parse(byte[] bytes, string origin)
    {
        if (bytes.Length < 4 || bytes[0] != 0 || bytes[1] != 0)
            throw new UserError($"{origin}: not an IDX file (bad magic number)");
        if (bytes[2] != 0x08) throw new UserError($"{origin}: IDX element type 0x{bytes[2]:x2} is not supported; expected unsigned bytes (0x08)");
        int dims = bytes[3];
        if (dims < 1 || dims > 4) throw new UserError($"{origin}: IDX file with {dims} dimensions; expected 1 to 4");
        if (bytes.Length < 4 + 4 * dims) throw new UserError($"{origin}: truncated IDX header");
        var shape = new long[dims];
        long count = 1;
        for (int i = 0; i < dims; i++)
        {
            int o = 4 + 4 * i;
            shape[i] = (bytes[o] << 24) | (bytes[o + 1] << 16) | (bytes[o + 2] << 8) | bytes[o + 3];
            if (shape[i] < 0) throw new UserError($"{origin}: negative size in IDX header");
            count *= shape[i];
        }
        int start = 4 + 4 * dims;
        if (bytes.LongLength - start != count)
            throw new UserError($"{origin}: truncated or oversized IDX data: header says {count} bytes ({string.Join("×", shape)}), file has {bytes.LongLength - start}");
        return tensor(bytes.AsSpan(start).ToArray(), shape);
    }

    /// <summary>
    /// Loads the images and labels of an MNIST-style split from <paramref name="dir"/>
    /// (<c>{split}-images-idx3-ubyte[.gz]</c> and <c>{split}-labels-idx1-ubyte[.gz]</c>, split = train or t10k),
    /// as [N, 1, 28, 28] float32 in [−1, 1] and int64 labels (named by <paramref name="classNames"/> when given).
    /// </summary>
    public static Dataset LoadSplit(string spec, string dir, string split, IReadOnlyList<string>? classNames = null)
    {
        string Find(string stem)
        {
            foreach (var name in new[] { stem + ".gz", stem })
            {
                var p = Path.Combine(dir, name);
                if (File.Exists(p)) return p;
            }
            throw new UserError($"{spec}: {Path.Combine(dir, stem)}[.gz] not found; install the dataset (make setup) or pass --data-dir DIR");
        }
        using var scope = NewDisposeScope();
        string imagesPath = Find($"{split}-images-idx3-ubyte"), labelsPath = Find($"{split}-labels-idx1-ubyte");
        var images = Read(imagesPath);
        var labels = Read(labelsPath);
        if (images.dim() != 3) throw new UserError($"{spec}: {imagesPath} has {images.dim()} dimensions; expected 3 (N×H×W)");
        if (labels.dim() != 1) throw new UserError($"{spec}: {labelsPath} has {labels.dim()} dimensions; expected 1 (N labels)");
        if (labels.shape[0] != images.shape[0])
            throw new UserError($"{spec}: {labels.shape[0]} labels in {labelsPath} for {images.shape[0]} images in {imagesPath}");
        if (classNames is not null && labels.shape[0] > 0 && labels.max().item<byte>() >= classNames.Count)
            throw new UserError($"{spec}: {labelsPath} holds label {labels.max().item<byte>()}; expected 0 … {classNames.Count - 1}");
        var x = images.to_type(ScalarType.Float32).unsqueeze(1).Div(127.5).Sub(1.0);
        var ds = new Dataset(spec, x, labels.to_type(ScalarType.Int64), classNames: classNames);
        return ds;
    }
}
