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

    /// <summary>
    /// A scatter plot of 2-D points, optionally over reference points (e.g. the training data). With reference points the
    /// frame is theirs (their extent, 10 % margin), so that a few far-flung samples do not shrink the data to a dot; the
    /// title then says how many samples fall outside it.
    /// </summary>
    public static void Scatter2D(string path, string title, float[] xy, float[]? referenceXy = null, int width = 700, int height = 700)
    {
        var plt = new Plot();
        if (referenceXy is { Length: >= 4 })
        {
            var f = Frame(referenceXy);
            int outside = Outside(xy, f);
            if (outside > 0) title += $" ({outside} of {xy.Length / 2} outside the frame)";
            plt.Axes.SetLimits(f.X0, f.X1, f.Y0, f.Y1);
        }
        if (referenceXy is not null)
        {
            var r = plt.Add.Scatter(Every(referenceXy, 0), Every(referenceXy, 1));
            r.LineWidth = 0; r.MarkerSize = 4; r.Color = Colors.C1.WithAlpha(0.45); r.LegendText = "data";
        }
        var s = plt.Add.Scatter(Every(xy, 0), Every(xy, 1));
        s.LineWidth = 0; s.MarkerSize = 3; s.Color = Colors.C0.WithAlpha(referenceXy is null ? 1 : 0.8); s.LegendText = "samples";
        plt.Title(title);
        plt.XLabel("x₁");
        plt.YLabel("x₂");
        if (referenceXy is null) plt.Axes.SquareUnits();
        if (referenceXy is not null) plt.ShowLegend();
        Save(plt, path, width, height);
    }

    /// <summary>The frame of interleaved 2-D points (x₀, y₀, x₁, y₁, …): their extent with a 10 % margin on each side.</summary>
    public static (double X0, double X1, double Y0, double Y1) Frame(float[] xy)
    {
        double[] x = Every(xy, 0), y = Every(xy, 1);
        double mx = 0.1 * (x.Max() - x.Min()), my = 0.1 * (y.Max() - y.Min());
        return (x.Min() - mx, x.Max() + mx, y.Min() - my, y.Max() + my);
    }

    /// <summary>How many of the interleaved 2-D points lie outside the frame (a non-finite point counts as outside).</summary>
    public static int Outside(float[] xy, (double X0, double X1, double Y0, double Y1) f)
    {
        int n = 0;
        for (int i = 0; i + 1 < xy.Length; i += 2)
            if (!(xy[i] >= f.X0 && xy[i] <= f.X1 && xy[i + 1] >= f.Y0 && xy[i + 1] <= f.Y1)) n++;
        return n;
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
