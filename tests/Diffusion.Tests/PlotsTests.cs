using Diffusion.IO;

namespace Diffusion.Tests;

public class PlotsTests
{
    [Fact]
    public void A_scatter_over_data_is_framed_by_the_data_and_counts_the_samples_outside()
    {
        // Data spanning x ∈ [−1, 3], y ∈ [0, 10]: the frame adds 10 % of each span on each side.
        float[] data = [-1, 0, 3, 10, 1, 5];
        var f = Plots.Frame(data);
        Assert.Equal((-1.4, 3.4, -1.0, 11.0), (Math.Round(f.X0, 9), Math.Round(f.X1, 9), Math.Round(f.Y0, 9), Math.Round(f.Y1, 9)));
        // Inside, near the corner, far out in x, just out in y, NaN.
        float[] samples = [0, 0, 3.375f, 10.75f, 80, 1, 0, -1.01f, float.NaN, 0];
        Assert.Equal(3, Plots.Outside(samples, f));
        string path = Path.Combine(TestUtil.TempDir("plots"), "s.png");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        Plots.Scatter2D(path, "t", samples, data);
        Assert.True(new FileInfo(path).Length > 1000);
    }
}
