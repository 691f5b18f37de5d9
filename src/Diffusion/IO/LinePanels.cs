using ScottPlot;

namespace Diffusion.IO;

/// <summary>
/// One named curve of a panel; an optional ±band (e.g. two standard errors) is drawn as error bars. Its colour is the
/// palette's <c>Colour</c>-th (default: the curve's position in the panel), so the same model keeps one colour across
/// panels whatever else a panel draws; a dashed curve is a reference belonging to the curve of the same colour.
/// </summary>
public sealed record Curve(string Name, double[] X, double[] Y, double[]? Band = null, int? Colour = null, bool Dashed = false);

/// <summary>One panel: a title, labelled axes (either may be logarithmic), curves, and optional horizontal reference lines.</summary>
public sealed record LinePanel(string Title, string XLabel, string YLabel, IReadOnlyList<Curve> Curves,
                               bool LogX = false, bool LogY = false, IReadOnlyList<double>? ReferenceY = null);

/// <summary>
/// Diagnostic figures: one or more line-plot panels side by side in one PNG (ScottPlot), every axis
/// labelled, a legend when several curves share a panel (e.g. a baseline and a remedy), log axes
/// where asked (values ≤ 0 are left out of a log axis).
/// </summary>
public static class LinePanels
{
    public static void Save(string path, IReadOnlyList<LinePanel> panels, int panelWidth = 700, int height = 520)
    {
        if (panels.Count == 0) throw new ArgumentException("no panels");
        var plots = panels.Select(Build).ToArray();
        Image image;
        if (plots.Length == 1) image = plots[0].GetImage(panelWidth, height);
        else
        {
            var mp = new Multiplot();
            var initial = mp.GetPlot(0);   // a new Multiplot starts with one empty plot
            foreach (var p in plots) mp.AddPlot(p);
            mp.RemovePlot(initial);
            mp.Layout = new ScottPlot.MultiplotLayouts.Columns();
            image = mp.Render(panelWidth * plots.Length, height);
        }
        var bytes = image.GetImageBytes(ImageFormat.Png);
        Util.AtomicFile.Write(path, s => s.Write(bytes, 0, bytes.Length));
    }

    /// <summary>One panel as the ScottPlot plot that <see cref="Save"/> renders.</summary>
    public static Plot Build(LinePanel panel)
    {
        var plt = new Plot();
        int shown = 0;
        foreach (var (c, index) in panel.Curves.Select((c, i) => (c, i)))
        {
            var keep = Enumerable.Range(0, c.X.Length)
                .Where(i => double.IsFinite(c.X[i]) && double.IsFinite(c.Y[i]) && (!panel.LogX || c.X[i] > 0) && (!panel.LogY || c.Y[i] > 0)).ToArray();
            if (keep.Length == 0) continue;
            double[] xs = keep.Select(i => panel.LogX ? Math.Log10(c.X[i]) : c.X[i]).ToArray();
            double[] ys = keep.Select(i => panel.LogY ? Math.Log10(c.Y[i]) : c.Y[i]).ToArray();
            var sc = plt.Add.Scatter(xs, ys);
            // Colours are set, not left to the plot: an error bar also takes the plot's next colour, which shifted
            // every later curve's colour in a panel with bands against the same curves in a panel without.
            sc.Color = plt.Add.Palette.GetColor(c.Colour ?? index);
            if (c.Dashed) sc.LinePattern = LinePattern.Dashed;
            // A log axis cannot show zeros or negative values: say how many points were left out
            // rather than let a curve that is exactly 0 (E-TSDM's K inside an interval) vanish silently.
            int hidden = Enumerable.Range(0, c.X.Length).Count(i => double.IsFinite(c.X[i]) && double.IsFinite(c.Y[i])) - keep.Length;
            sc.LegendText = hidden == 0 ? c.Name : $"{c.Name} ({hidden} point{(hidden == 1 ? "" : "s")} ≤ 0 not drawn)";
            sc.MarkerSize = keep.Length <= 40 ? 5 : 0;
            sc.LineWidth = 1.5f;
            if (c.Band is not null && !panel.LogY)
            {
                var eb = plt.Add.ErrorBar(xs, ys, keep.Select(i => c.Band[i]).ToArray());
                eb.Color = sc.Color;
            }
            shown++;
        }
        foreach (var y in panel.ReferenceY ?? [])
        {
            var line = plt.Add.HorizontalLine(panel.LogY ? Math.Log10(y) : y);
            line.Color = Colors.Gray;
            line.LinePattern = LinePattern.Dashed;
            line.LineWidth = 1;
        }
        if (panel.LogX) plt.Axes.Bottom.TickGenerator = LogTicks();
        if (panel.LogY) plt.Axes.Left.TickGenerator = LogTicks();
        plt.Title(panel.Title);
        plt.XLabel(panel.LogX ? panel.XLabel + " (log scale)" : panel.XLabel);
        plt.YLabel(panel.LogY ? panel.YLabel + " (log scale)" : panel.YLabel);
        if (shown > 1) plt.ShowLegend();
        return plt;
    }

    private static ScottPlot.TickGenerators.NumericAutomatic LogTicks() => new()
    {
        LabelFormatter = v => Math.Pow(10, v).ToString("G6", System.Globalization.CultureInfo.InvariantCulture),
        MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
        IntegerTicksOnly = true,
    };
}
