using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using Diffusion.IO;

namespace Diffusion.Training;

/// <summary>
/// One line of the run's JSONL log. <see cref="Parts"/> holds the interval means of the parts the objective's terms
/// report (<see cref="ILossTerm.LogParts"/>, e.g. "consistency", the MMD² term before λ), written after the fixed fields.
/// </summary>
public sealed record LogEntry(long Step, double Loss, double GradNorm, double Lr, double SamplesPerSecond)
{
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Parts { get; init; }

    /// <summary>The interval mean of a reported part, or null.</summary>
    public double? Part(string name) => Parts is not null && Parts.TryGetValue(name, out var v) ? v.GetDouble() : null;
}

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
    private readonly IReadOnlyList<string> partNames;
    private readonly double[] partSums;
    private readonly Stopwatch intervalWatch = Stopwatch.StartNew();
    private double lossSum, gradSum;
    private int inInterval;

    /// <summary>Appends to the log at <paramref name="path"/>; every entry carries the interval means of the parts named in <paramref name="parts"/>.</summary>
    public RunLog(string path, int batchSize, IReadOnlyList<string> parts)
    {
        writer = new StreamWriter(path, append: true);
        this.batchSize = batchSize;
        partNames = parts;
        partSums = new double[parts.Count];
    }

    /// <summary>Adds one step to the current interval, with the step's reported <paramref name="parts"/>.</summary>
    public void Add(double loss, double gradNorm, IReadOnlyDictionary<string, double> parts)
    {
        lossSum += loss; gradSum += gradNorm; inInterval++;
        for (int i = 0; i < partNames.Count; i++)
            if (parts.TryGetValue(partNames[i], out var v)) partSums[i] += v;
    }

    /// <summary>Writes the current interval's means as the entry of <paramref name="step"/> and starts a new interval.</summary>
    public void Write(long step, double lr)
    {
        double secs = intervalWatch.Elapsed.TotalSeconds;
        var e = new LogEntry(step, lossSum / inInterval, gradSum / inInterval, lr, inInterval * batchSize / Math.Max(secs, 1e-9))
        {
            Parts = partNames.Count == 0 ? null
                : partNames.Select((name, i) => (name, i)).ToDictionary(p => p.name, p => JsonSerializer.SerializeToElement(partSums[p.i] / inInterval)),
        };
        writer.WriteLine(JsonSerializer.Serialize(e, Json));
        writer.Flush();
        lossSum = gradSum = 0; inInterval = 0;
        Array.Clear(partSums);
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
