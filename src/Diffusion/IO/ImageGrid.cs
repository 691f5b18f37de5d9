using StbImageWriteSharp;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.IO;

/// <summary>Writes a batch of images in [−1, 1] as one PNG grid.</summary>
public static class ImageGrid
{
    /// <summary>
    /// Lays out N×C×H×W images (C = 1 or 3) in rows of <paramref name="columns"/> (default ⌈√N⌉) with a
    /// <paramref name="pad"/>-pixel border, maps [−1, 1] to [0, 255] and writes a PNG atomically.
    /// </summary>
    public static void SavePng(string path, Tensor images, int columns = 0, int pad = 2, int scale = 1)
    {
        using var scope = NewDisposeScope();
        if (images.dim() != 4 || (images.shape[1] != 1 && images.shape[1] != 3))
            throw new UserError($"{path}: a PNG grid needs N×C×H×W images with C = 1 or 3, got shape [{string.Join(", ", images.shape)}]");
        long n = images.shape[0], c = images.shape[1], h = images.shape[2], w = images.shape[3];
        int cols = columns > 0 ? columns : (int)Math.Ceiling(Math.Sqrt(n));
        int rows = (int)((n + cols - 1) / cols);
        var x = images.detach().cpu().to_type(ScalarType.Float32).Clamp(-1, 1).Add(1L).Mul(127.5).round().to_type(ScalarType.Byte);
        if (scale > 1) x = x.repeat_interleave(scale, 2).repeat_interleave(scale, 3);
        h *= scale; w *= scale;
        int gh = (int)(rows * (h + pad) + pad), gw = (int)(cols * (w + pad) + pad);
        var grid = zeros([3, gh, gw], dtype: ScalarType.Byte);
        for (int i = 0; i < n; i++)
        {
            int r = i / cols, col = i % cols;
            long top = pad + r * (h + pad), left = pad + col * (w + pad);
            var img = c == 1 ? x[i].expand(3, h, w) : x[i];
            grid.narrow(1, top, h).narrow(2, left, w).copy_(img);
        }
        var bytes = grid.permute(1, 2, 0).contiguous().data<byte>().ToArray();
        Util.AtomicFile.Write(path, s => new ImageWriter().WritePng(bytes, gw, gh, ColorComponents.RedGreenBlue, s));
    }
}
