using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Diffusion.IO;
using Diffusion.Models;
using Diffusion.Sampling;
using Diffusion.Config;
using Diffusion.Schedules;
using static TorchSharp.torch;

namespace Diffusion.Diagnostics;

/// <summary>Common settings of the diagnostics (each documents which it uses).</summary>
public sealed record DiagnosticSettings
{
    /// <summary>Examples (chains, held-out data points) per model.</summary>
    public int N { get; init; } = 1000;
    public long Seed { get; init; } = 0;
    /// <summary>Backward steps of the reverse chains (respaced uniformly when below T).</summary>
    public int Steps { get; init; } = 100;
    /// <summary>Reverse chains: ddpm (ancestral, the default) or ddim (η = 0).</summary>
    public string Sampler { get; init; } = "ddpm";
    /// <summary>Points of the time grid (dense near t = 0) where per-t quantities are measured.</summary>
    public int GridPoints { get; init; } = 25;
    /// <summary>Examples per forward pass.</summary>
    public int BatchSize { get; init; } = 256;
}

/// <summary>Mean and standard error of per-example values.</summary>
public readonly record struct Estimate(double Mean, double Se)
{
    public static Estimate Of(IReadOnlyList<double> v)
    {
        double m = v.Average();
        double var = v.Count > 1 ? v.Sum(a => (a - m) * (a - m)) / (v.Count - 1) : 0;
        return new Estimate(m, Math.Sqrt(var / v.Count));
    }
}

/// <summary>Helpers shared by the diagnostics: time grids, chains, batched model calls, CSV/JSON/PNG output.</summary>
public static class DiagnosticReport
{
    /// <summary>
    /// Integer times in [<paramref name="min"/>, T − 1], dense near 0: the rounded values of a geometric
    /// sequence from max(min, 1) to T − 1 (duplicates removed), plus <paramref name="min"/> itself.
    /// </summary>
    public static int[] DenseNearZero(int T, int points, int min = 0)
    {
        var set = new SortedSet<int> { min, T - 1 };
        double lo = Math.Max(min, 1), hi = T - 1;
        for (int i = 0; i < points; i++)
        {
            double v = lo * Math.Pow(hi / lo, points == 1 ? 0 : i / (double)(points - 1));
            set.Add((int)Math.Clamp(Math.Round(v), min, T - 1));
        }
        return set.ToArray();
    }

    /// <summary>The reverse-chain sampler of the settings over the model's schedule (uniform respacing; clipping as for sampling).</summary>
    public static ISampler Chain(DiagnosticModel m, DiagnosticSettings s, int? steps = null) =>
        Samplers.Create(new SampleConfig { Sampler = s.Sampler, Steps = Math.Min(steps ?? s.Steps, m.Schedule.T), Spacing = "uniform" }, m.Schedule, clipDefault: m.IsImage);

    /// <summary>
    /// Runs the settings' reverse chain from x_T ~ N(0, I) (N examples, drawn with <paramref name="gen"/>)
    /// through a <see cref="ChainRecorder"/>, which the caller owns, keeping the states at <paramref name="keepStatesAt"/>.
    /// </summary>
    public static ChainRecorder RecordChain(DiagnosticModel m, DiagnosticSettings s, Generator gen, ISet<int>? keepStatesAt = null)
    {
        var recorder = new ChainRecorder(m.Denoiser, keepStatesAt);
        var shape = new long[] { s.N }.Concat(m.ExampleShape).ToArray();
        using var xT = randn(shape, generator: gen);
        using var _ = SampleRun.Draw(Chain(m, s), recorder, xT, gen, s.BatchSize);
        return recorder;
    }

    /// <summary>The diagnostic's JSON file: its name, definition, settings and one object per model.</summary>
    public static JsonObject Document(string name, string definition, JsonObject settings, IEnumerable<JsonObject> models) => new()
    {
        ["diagnostic"] = name,
        ["definition"] = definition,
        ["settings"] = settings,
        ["models"] = new JsonArray(models.Select(m => (JsonNode)m).ToArray()),
    };

    /// <summary>x_t of held-out x0 at integer step t (<see cref="ForwardDraw"/>, ε from the generator), and the model's (ε̂, x̂0) there, in batches.</summary>
    public static (Tensor Xt, Tensor Eps, Tensor EpsHat, Tensor X0Hat) Forward(DiagnosticModel m, Tensor x0, int t, Generator gen, int batch)
    {
        using var scope = NewDisposeScope();
        var draw = ForwardDraw.At(m.Schedule, x0, t, gen);
        var (epsHat, x0Hat) = Predict(m.Denoiser, draw.Xt, xb => m.Schedule.Step(t, xb), batch);
        return (draw.Xt.MoveToOuterDisposeScope(), draw.Eps.MoveToOuterDisposeScope(), epsHat.MoveToOuterDisposeScope(), x0Hat.MoveToOuterDisposeScope());
    }

    /// <summary>(ε̂, x̂0) of a denoiser at the step <paramref name="stepFor"/> gives for each batch of x, in batches.</summary>
    public static (Tensor Eps, Tensor X0) Predict(IDenoiser d, Tensor x, Func<Tensor, TimeStep> stepFor, int batch)
    {
        var eps = new List<Tensor>();
        var x0 = new List<Tensor>();
        using (no_grad())
        {
            for (long i = 0; i < x.shape[0]; i += batch)
            {
                using var scope = NewDisposeScope();
                var xb = x.narrow(0, i, Math.Min(batch, x.shape[0] - i));
                var (e, z) = d.EpsAndX0(xb, stepFor(xb));
                eps.Add(e.MoveToOuterDisposeScope());
                x0.Add(z.MoveToOuterDisposeScope());
            }
        }
        var re = cat(eps, 0);
        var rx = cat(x0, 0);
        foreach (var p in eps.Concat(x0)) p.Dispose();
        return (re, rx);
    }

    /// <summary>Per-example mean over coordinates of f(row) for a [N, …] tensor, as doubles.</summary>
    public static double[] PerExample(Tensor v) => v.reshape(v.shape[0], -1).to_type(ScalarType.Float64).mean([1]).data<double>().ToArray();

    /// <summary>Writes CSV text (invariant culture) atomically.</summary>
    public static void WriteCsv(string path, string[] header, IEnumerable<object[]> rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine(string.Join(",", header));
        foreach (var r in rows) sb.AppendLine(string.Join(",", r.Select(Cell)));
        Util.AtomicFile.WriteAllText(path, sb.ToString());
    }

    private static string Cell(object o) => o switch
    {
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        string s => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s,
        _ => Convert.ToString(o, CultureInfo.InvariantCulture) ?? "",
    };

    public static void WriteJson(string path, JsonNode json) =>
        Util.AtomicFile.WriteAllText(path, json.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");

    public static void WritePlot(string path, IReadOnlyList<LinePanel> panels) => LinePanels.Save(path, panels);

    /// <summary>A JSON array of numbers (null where a value is not finite).</summary>
    public static JsonArray Array(IEnumerable<double> v) => new(v.Select(x => double.IsFinite(x) ? (JsonNode)JsonValue.Create(x) : null).ToArray());
    public static JsonArray Array(IEnumerable<int> v) => new(v.Select(x => (JsonNode)x).ToArray());
    /// <summary>A JSON number, or null when the value is not finite (JSON has no NaN; a diverged model's values are).</summary>
    public static JsonNode? Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;

    /// <summary>The settings as JSON, for the output files.</summary>
    public static JsonObject Json(DiagnosticSettings s) => new()
    {
        ["n"] = s.N, ["seed"] = s.Seed, ["steps"] = s.Steps, ["sampler"] = s.Sampler, ["grid_points"] = s.GridPoints,
    };
}
