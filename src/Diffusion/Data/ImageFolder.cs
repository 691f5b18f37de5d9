using StbImageSharp;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Data;

/// <summary>
/// A folder of PNG/JPEG images (searched recursively, sorted by path), each resized so that its
/// short side is <c>size</c> (bilinear with antialiasing) and centre-cropped to size×size, as gray
/// (1 channel) or RGB (3 channels), scaled to [−1, 1]. When every image lies in a sub-folder of DIR (none
/// directly in it), each sub-folder is a class: labels 0 … K−1 in the ordinal order of the sub-folders' names,
/// which are kept as the class names.
/// </summary>
public static class ImageFolder
{
    private static readonly string[] Extensions = [".png", ".jpg", ".jpeg"];

    /// <summary><c>images:DIR</c>, sized by data.image-size and data.channels.</summary>
    public static Dataset FromSpec(DataRequest request)
    {
        if (request.Arg == "") throw new UserError($"{request.Spec}: expected images:DIR");
        return Load(request.Spec, request.Arg, request.Config.ImageSize, request.Config.Channels);
    }

    /// <param name="spec">The data spec as written (e.g. <c>images:DIR</c>), used in error messages.</param>
    /// <param name="dir">The folder to search for images.</param>
    /// <param name="size">Side of the square images in pixels (the short side is resized to it, then centre-cropped).</param>
    /// <param name="channels">1, 3, or 0 to decide from the files (1 when every image is gray).</param>
    public static Dataset Load(string spec, string dir, int size, int channels)
    {
        if (!Directory.Exists(dir)) throw new UserError($"{spec}: folder {dir} not found");
        if (size < 1) throw new UserError($"{spec}: data.image-size must be positive, got {size}");
        if (channels is not (0 or 1 or 3)) throw new UserError($"{spec}: data.channels must be 0 (from the files), 1 or 3, got {channels}");
        var files = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .OrderBy(f => f, StringComparer.Ordinal).ToList();
        if (files.Count == 0) throw new UserError($"{spec}: no .png, .jpg or .jpeg files in {dir}");

        var decoded = new List<(byte[] Rgb, int W, int H)>(files.Count);
        bool allGray = true;
        foreach (var f in files)
        {
            ImageResult img;
            try { img = ImageResult.FromMemory(File.ReadAllBytes(f), ColorComponents.RedGreenBlue); }
            catch (Exception e) { throw new UserError($"{spec}: {f}: not a readable PNG/JPEG image ({e.Message.ReplaceLineEndings(" ")})"); }
            if (img?.Data is null || img.Width < 1 || img.Height < 1) throw new UserError($"{spec}: {f}: not a readable PNG/JPEG image");
            if (allGray)
            {
                var d = img.Data;
                for (int i = 0; i < d.Length; i += 3)
                    if (d[i] != d[i + 1] || d[i] != d[i + 2]) { allGray = false; break; }
            }
            decoded.Add((img.Data, img.Width, img.Height));
        }
        int c = channels == 0 ? (allGray ? 1 : 3) : channels;
        var (labels, names) = ClassesOf(dir, files);

        using var scope = NewDisposeScope();
        var batch = new List<Tensor>(decoded.Count);
        foreach (var (rgb, w, h) in decoded)
        {
            var x = tensor(rgb, [h, w, 3]).permute(2, 0, 1).to_type(ScalarType.Float32).unsqueeze(0); // 1,3,H,W in [0,255]
            if (c == 1) x = x[.., 0..1].Mul(0.299).Add(x[.., 1..2].Mul(0.587)).Add(x[.., 2..3].Mul(0.114));
            batch.Add(ResizeCenterCrop(x, size));
        }
        var all = cat(batch, 0).Div(127.5).Sub(1.0);
        return new Dataset(spec, all.Clamp(-1.0, 1.0), labels is null ? null : tensor(labels), classNames: names);
    }

    /// <summary>The class of each file (its first-level sub-folder) and the classes' names; (null, null) when some file lies directly in <paramref name="dir"/>.</summary>
    public static (long[]? Labels, string[]? Names) ClassesOf(string dir, IReadOnlyList<string> files)
    {
        var folders = new string[files.Count];
        for (int i = 0; i < files.Count; i++)
        {
            var rel = Path.GetRelativePath(dir, files[i]);
            int sep = rel.IndexOfAny([Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar]);
            if (sep <= 0) return (null, null);
            folders[i] = rel[..sep];
        }
        var names = folders.Distinct().Order(StringComparer.Ordinal).ToArray();
        var index = names.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => (long)p.i);
        return (folders.Select(f => index[f]).ToArray(), names);
    }

    /// <summary>Resizes [1, C, H, W] so that its short side is <paramref name="size"/>, then crops the centre size×size.</summary>
    public static Tensor ResizeCenterCrop(Tensor x, int size)
    {
        long h = x.shape[2], w = x.shape[3];
        double scale = (double)size / Math.Min(h, w);
        long nh = Math.Max(size, (long)Math.Round(h * scale)), nw = Math.Max(size, (long)Math.Round(w * scale));
        var r = (nh == h && nw == w) ? x : nn.functional.interpolate(x, size: [nh, nw], mode: InterpolationMode.Bilinear, align_corners: false, antialias: true);
        long top = (nh - size) / 2, left = (nw - size) / 2;
        return r.narrow(2, top, size).narrow(3, left, size);
    }
}
