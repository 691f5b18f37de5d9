using ScottPlot;

namespace Diffusion.IO;

/// <summary>PNG plots of training curves and 2-D samples (ScottPlot), axes labelled.</summary>
public static class Plots
{
    /// <summary>A line plot of one or more named series against x (with <paramref name="markers"/>, each point marked: for few points).</summary>
    public static void Lines(string path, string title, string xLabel, string yLabel,
                             IEnumerable<(string Name, double[] X, double[] Y)> series, bool logY = false, int width = 900, int height = 600, bool markers = false, bool logX = false)
    {
        var plt = new Plot();
        int count = 0;
        foreach (var (name, xs, ys) in series)
        {
            if (xs.Length == 0) continue;
            var yv = logY ? ys.Select(v => v > 0 ? Math.Log10(v) : double.NaN).ToArray() : ys;
            var xv = logX ? xs.Select(v => v > 0 ? Math.Log10(v) : double.NaN).ToArray() : xs;
            var sc = plt.Add.Scatter(xv, yv);
            sc.LegendText = name;
            sc.MarkerSize = markers ? 7 : 0;
            sc.LineWidth = 1.5f;
            count++;
        }
        if (logY)
        {
            var ticks = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = v => Math.Pow(10, v).ToString("G3"), MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator() };
            plt.Axes.Left.TickGenerator = ticks;
        }
        if (logX)
        {
            var ticks = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = v => Math.Pow(10, v).ToString("G3"), MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator() };
            plt.Axes.Bottom.TickGenerator = ticks;
        }
        plt.Title(title);
        plt.XLabel(logX ? xLabel + " (log scale)" : xLabel);
        plt.YLabel(logY ? yLabel + " (log scale)" : yLabel);
        if (count > 1) plt.ShowLegend();
        Save(plt, path, width, height);
    }

    /// <summary>A scatter plot of 2-D points, optionally over reference points (e.g. the training data).</summary>
    public static void Scatter2D(string path, string title, float[] xy, float[]? referenceXy = null, int width = 700, int height = 700)
    {
        var plt = new Plot();
        if (referenceXy is not null)
        {
            var r = plt.Add.Scatter(Every(referenceXy, 0), Every(referenceXy, 1));
            r.LineWidth = 0; r.MarkerSize = 2; r.Color = Colors.Gray.WithAlpha(0.35); r.LegendText = "data";
        }
        var s = plt.Add.Scatter(Every(xy, 0), Every(xy, 1));
        s.LineWidth = 0; s.MarkerSize = 3; s.Color = Colors.C0; s.LegendText = "samples";
        plt.Title(title);
        plt.XLabel("x₁");
        plt.YLabel("x₂");
        plt.Axes.SquareUnits();
        if (referenceXy is not null) plt.ShowLegend();
        Save(plt, path, width, height);
    }

    private static double[] Every(float[] xy, int offset)
    {
        var r = new double[xy.Length / 2];
        for (int i = 0; i < r.Length; i++) r[i] = xy[2 * i + offset];
        return r;
    }

    private static void Save(Plot plt, string path, int width, int height)
    {
        var bytes = plt.GetImageBytes(width, height, ImageFormat.Png);
        Util.AtomicFile.Write(path, s => s.Write(bytes, 0, bytes.Length));
    }
}
