using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using Diffusion.IO;

namespace Diffusion.Training;

/// <summary>One line of the run's JSONL log; <c>Consistency</c> (the MMD² term before λ) only when that remedy is on.</summary>
public sealed record LogEntry(long Step, double Loss, double GradNorm, double Lr, double SamplesPerSecond, double? Consistency = null);

/// <summary>
/// A run's JSONL log (<c>log.jsonl</c>): one <see cref="LogEntry"/> per log interval, each the mean over
/// the steps of its interval. An instance appends to the log of a running session; the static members
/// read, cut back (on resume) and plot it.
/// </summary>
public sealed class RunLog : IDisposable
{
    public const string FileName = "log.jsonl";

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly StreamWriter writer;
    private readonly int batchSize;
    private readonly bool withConsistency;
    private readonly Stopwatch intervalWatch = Stopwatch.StartNew();
    private double lossSum, gradSum, consistencySum;
    private int inInterval;

    /// <summary>Appends to the log at <paramref name="path"/>; <paramref name="withConsistency"/> adds the consistency term to every entry.</summary>
    public RunLog(string path, int batchSize, bool withConsistency)
    {
        writer = new StreamWriter(path, append: true);
        this.batchSize = batchSize;
        this.withConsistency = withConsistency;
    }

    /// <summary>Adds one step to the current interval.</summary>
    public void Add(double loss, double gradNorm, double? consistency)
    {
        lossSum += loss; gradSum += gradNorm; inInterval++;
        if (consistency is double r) consistencySum += r;
    }

    /// <summary>Writes the current interval's means as the entry of <paramref name="step"/> and starts a new interval.</summary>
    public void Write(long step, double lr)
    {
        double secs = intervalWatch.Elapsed.TotalSeconds;
        var e = new LogEntry(step, lossSum / inInterval, gradSum / inInterval, lr, inInterval * batchSize / Math.Max(secs, 1e-9),
                             withConsistency ? consistencySum / inInterval : null);
        writer.WriteLine(JsonSerializer.Serialize(e, Json));
        writer.Flush();
        lossSum = gradSum = consistencySum = 0; inInterval = 0;
        intervalWatch.Restart();
    }

    public void Dispose() => writer.Dispose();

    /// <summary>Reads a run's JSONL log (lines that do not parse, e.g. one cut short by a kill, are skipped).</summary>
    public static List<LogEntry> Read(string path)
    {
        var list = new List<LogEntry>();
        if (!File.Exists(path)) return list;
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            try { if (JsonSerializer.Deserialize<LogEntry>(line, Json) is { } e) list.Add(e); }
            catch (JsonException) { }
        }
        return list;
    }

    /// <summary>
    /// Keeps the entries up to step <paramref name="upTo"/>: a run killed after its last checkpoint may have
    /// logged later steps, which the resumed run redoes (torn lines go too).
    /// </summary>
    public static void Truncate(string path, long upTo)
    {
        var kept = Read(path).Where(e => e.Step <= upTo)
            .Select(e => JsonSerializer.Serialize(e, Json) + "\n");
        Util.AtomicFile.WriteAllText(path, string.Concat(kept));
    }

    /// <summary>Writes the loss curve of the log in <paramref name="runDir"/> as a PNG.</summary>
    public static void WriteLossPlot(string runDir, string path)
    {
        var entries = Read(Path.Combine(runDir, FileName));
        var x = entries.Select(e => (double)e.Step).ToArray();
        var y = entries.Select(e => e.Loss).ToArray();
        // Trailing moving average over a twentieth of the run.
        int w = Math.Max(1, y.Length / 20);
        var smooth = new double[y.Length];
        double acc = 0;
        for (int i = 0; i < y.Length; i++)
        {
            acc += y[i];
            if (i >= w) acc -= y[i - w];
            smooth[i] = acc / Math.Min(i + 1, w);
        }
        Plots.Lines(path, "training loss", "step", "loss (mean over each log interval)",
            [("loss", x, y), ($"moving average of {w}", x, smooth)], logY: true);
    }
}
