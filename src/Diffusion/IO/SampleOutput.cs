using Diffusion.Data;
using static TorchSharp.torch;

namespace Diffusion.IO;

/// <summary>Writes samples where a user asked: FILE.npy (raw values) or FILE.png (an image grid, or a scatter plot for 2-D vectors).</summary>
public static class SampleOutput
{
    /// <param name="path">The output file; its extension (.npy or .png) picks the format.</param>
    /// <param name="samples">The samples: [N, C, H, W] images or [N, 2] points for a PNG, any shape for .npy.</param>
    /// <param name="referencePoints">Optional [M, 2] points drawn behind the samples in a scatter plot.</param>
    /// <param name="title">Title of a scatter plot (default: "N samples").</param>
    /// <param name="columns">Images per row of a grid (0: ⌈√N⌉); a grid of one row per class uses N/K.</param>
    public static void Save(string path, Tensor samples, Tensor? referencePoints = null, string? title = null, int columns = 0)
    {
        string ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext == ".npy") { Npy.Write(path, samples); return; }
        if (ext != ".png") throw new UserError($"--out {path}: expected a .png or .npy file");
        if (samples.dim() == 4) { ImageGrid.SavePng(path, samples, columns, scale: samples.shape[2] <= 32 ? 2 : 1); return; }
        if (samples.dim() == 2 && samples.shape[1] == 2)
        {
            using var s = samples.detach().cpu().to_type(ScalarType.Float32).contiguous();
            float[]? refXy = null;
            if (referencePoints is not null)
            {
                using var r = referencePoints.detach().cpu().to_type(ScalarType.Float32).contiguous();
                refXy = r.data<float>().ToArray();
            }
            Plots.Scatter2D(path, title ?? $"{samples.shape[0]} samples", s.data<float>().ToArray(), refXy);
            return;
        }
        throw new UserError($"--out {path}: samples of shape [{string.Join(", ", samples.shape)}] cannot be drawn as a PNG; use .npy");
    }
}
