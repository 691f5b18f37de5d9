namespace Diffusion.Cli;

/// <summary>
/// A progress line on stderr: "label  step 120/800 [######....] loss 0.0812  3.1 it/s  ETA 3m40s".
/// On a terminal it redraws in place; when stderr is redirected it prints a line every 10% (or 60 s).
/// </summary>
public sealed class ProgressBar(string label, bool enabled = true)
{
    private readonly bool tty = !Console.IsErrorRedirected;
    private readonly System.Diagnostics.Stopwatch sw = System.Diagnostics.Stopwatch.StartNew();
    private DateTime lastDraw = DateTime.MinValue;
    private int lastDecile = -1;
    private double lastLine;
    private bool drawn;

    public void Report(long done, long total, double? loss = null, double? rate = null)
    {
        if (!enabled || total <= 0) return;
        double elapsed = sw.Elapsed.TotalSeconds;
        double r = rate ?? done / Math.Max(elapsed, 1e-9);
        double eta = r > 0 ? (total - done) / r : double.NaN;
        int width = 24;
        int fill = (int)Math.Round(width * Math.Clamp((double)done / total, 0, 1));
        string bar = new string('#', fill) + new string('.', width - fill);
        string text = $"{label}  {done}/{total} [{bar}]" + (loss is double l ? $" loss {l:F4}" : "") + $"  {r:F2} it/s  ETA {Format(eta)}";
        if (tty)
        {
            if (done < total && (DateTime.UtcNow - lastDraw).TotalMilliseconds < 200) return;
            lastDraw = DateTime.UtcNow;
            Console.Error.Write("\r" + text.PadRight(Math.Min(Console.BufferWidth > 0 ? Console.BufferWidth - 1 : 100, 110)));
            drawn = true;
            if (done >= total) { Console.Error.WriteLine(); drawn = false; }
        }
        else
        {
            int decile = (int)(10.0 * done / total);
            if (decile != lastDecile || elapsed - lastLine >= 60 || done >= total)
            {
                if (decile == lastDecile && done >= total && lastDecile == 10) return;
                lastDecile = decile;
                lastLine = elapsed;
                Console.Error.WriteLine(text);
            }
        }
    }

    /// <summary>Ends an unfinished in-place line (e.g. before printing an error).</summary>
    public void Finish()
    {
        if (drawn) { Console.Error.WriteLine(); drawn = false; }
    }

    public static string Format(double seconds)
    {
        if (double.IsNaN(seconds) || double.IsInfinity(seconds)) return "?";
        var t = TimeSpan.FromSeconds(Math.Round(seconds));
        return t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{t.Minutes}m{t.Seconds:D2}s" : $"{t.Seconds}s";
    }
}
