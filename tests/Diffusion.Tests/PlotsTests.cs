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

    [Fact]
    public void A_curve_keeps_its_colour_across_panels_with_and_without_error_bars()
    {
        double[] x = [1, 10, 100];
        Curve C(string name, double[]? band = null, int? colour = null, bool dashed = false) => new(name, x, [0.1, 0.2, 0.3], band, colour, dashed);
        var withBands = LinePanels.Build(new LinePanel("a", "t", "y", [C("base", [0.01, 0.01, 0.01]), C("remedy", [0.01, 0.01, 0.01])], LogX: true));
        var plain = LinePanels.Build(new LinePanel("b", "t", "y", [C("base"), C("remedy"), C("base floor", colour: 0, dashed: true)], LogX: true, LogY: true));
        var a = withBands.GetPlottables().OfType<ScottPlot.Plottables.Scatter>().ToArray();
        var b = plain.GetPlottables().OfType<ScottPlot.Plottables.Scatter>().ToArray();
        Assert.Equal(2, withBands.GetPlottables().OfType<ScottPlot.Plottables.ErrorBar>().Count());
        Assert.Equal([a[0].Color, a[1].Color], [b[0].Color, b[1].Color]);
        Assert.NotEqual(b[0].Color, b[1].Color);
        Assert.Equal(b[0].Color, b[2].Color);                       // the floor drawn in its model's colour, dashed
        Assert.Equal(ScottPlot.LinePattern.Dashed, b[2].LinePattern);
        Assert.Equal(ScottPlot.LinePattern.Solid, b[0].LinePattern);
    }
}
