namespace Diffusion.Cli;

/// <summary>
/// Progress on stderr. On a terminal it is Spectre.Console's live progress display ("label 120/800 loss 0.0812
/// 3.1 it/s", bar, percentage, remaining time), redrawn in place. When stderr is redirected (logs, CI, the tests) it
/// prints "label  120/800 [######....] loss 0.0812  3.1 it/s  ETA 3m40s", one line every 10% (or 60 s): Spectre's
/// own non-interactive fallback prints only "label: 25%" at 25/50/75/95…100% (no loss, rate or ETA), so the log
/// lines stay this class's, and Spectre is not even loaded for them.
/// </summary>
public sealed class ProgressBar(string label, bool enabled = true)
{
    private readonly bool tty = !Console.IsErrorRedirected && Environment.GetEnvironmentVariable("DIFFUSION_PLAIN_PROGRESS") != "1";
    private readonly System.Diagnostics.Stopwatch sw = System.Diagnostics.Stopwatch.StartNew();
    private int lastDecile = -1;
    private double lastLine;
    private ILiveProgress? live;      // an interface: a LiveProgress field would load Spectre.Console with this class
    private static bool anyLive;

    public void Report(long done, long total, double? loss = null, double? rate = null)
    {
        if (!enabled || total <= 0) return;
        double elapsed = sw.Elapsed.TotalSeconds;
        double r = rate ?? done / Math.Max(elapsed, 1e-9);
        string detail = (loss is double l ? $" loss {l:F4}" : "") + $"  {r:F2} it/s";
        if (tty)
        {
            if (live is null) { live = StartLive(label); anyLive = true; }
            live.Update(done, total, $"{label}  {done}/{total}{detail}");
            if (done >= total) Finish();
            return;
        }
        double eta = r > 0 ? (total - done) / r : double.NaN;
        int decile = (int)(10.0 * done / total);
        if (decile != lastDecile || elapsed - lastLine >= 60 || done >= total)
        {
            if (decile == lastDecile && done >= total && lastDecile == 10) return;
            lastDecile = decile;
            lastLine = elapsed;
            const int width = 24;
            int fill = (int)Math.Round(width * Math.Clamp((double)done / total, 0, 1));
            string bar = new string('#', fill) + new string('.', width - fill);
            Console.Error.WriteLine($"{label}  {done}/{total} [{bar}]" + (loss is double l2 ? $" loss {l2:F4}" : "") + $"  {r:F2} it/s  ETA {Format(eta)}");
        }
    }

    /// <summary>Ends the live display, if any (before printing anything else, e.g. an error).</summary>
    public void Finish()
    {
        live?.Stop();
        live = null;
    }

    /// <summary>Ends every live display (the command failed: its error line must not be redrawn over).</summary>
    public static void StopAll()
    {
        if (anyLive) StopLive();   // otherwise Spectre.Console stays unloaded
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void StopLive() => LiveProgress.StopAll();

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static ILiveProgress StartLive(string label) => new LiveProgress(label);

    public static string Format(double seconds)
    {
        if (double.IsNaN(seconds) || double.IsInfinity(seconds)) return "?";
        var t = TimeSpan.FromSeconds(Math.Round(seconds));
        return t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{t.Minutes}m{t.Seconds:D2}s" : $"{t.Seconds}s";
    }
}

/// <summary>A live (redrawn) progress display of one task.</summary>
internal interface ILiveProgress
{
    void Update(long done, long total, string description);
    void Stop();
}
