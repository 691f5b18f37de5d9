using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Diffusion.Diagnostics;
using Diffusion.Metrics;

namespace Diffusion.Study;

/// <summary>
/// A diagnostic of the plan (<c>[[diagnostics]]</c>): one of <c>diffusion diagnose</c>'s per-model measurements, run on the
/// final checkpoint of the job of each listed variant — and of the baseline — with <see cref="Seed"/>, so that the report
/// overlays the remedy's curve on the baseline's. The settings are <c>diffusion diagnose</c>'s (same defaults, except N =
/// 128 chains/examples, its image default).
/// </summary>
public sealed record StudyDiagnostic(string Name, IReadOnlyList<string> Variants, long Seed, int N = 128, int Steps = 100, int GridPoints = 25,
                                     double Delta = 1.0, int Permutations = 100, string Bandwidth = "nearest")
{
    /// <summary>The diagnostics a plan can run: those measured on one model at a time (mixture-steps is a sweep over steps: <c>[[sweeps]]</c>).</summary>
    public static readonly IReadOnlyList<string> Names = ["exposure-bias", "x0-bias", "lipschitz", "error-propagation"];

    public DiagnosticSettings Settings => new() { N = N, Seed = 0, Steps = Steps, Sampler = "ddpm", GridPoints = GridPoints };

    /// <summary>What a cached diagnostic depends on besides the checkpoint (a cached one is used only when made with the same).</summary>
    public string Identity() => new JsonObject
    {
        ["name"] = Name, ["n"] = N, ["steps"] = Steps, ["grid_points"] = GridPoints,
        ["delta"] = Name == "lipschitz" ? Delta : null,
        ["permutations"] = Name == "error-propagation" ? Permutations : null,
        ["bandwidth"] = Name == "error-propagation" ? Bandwidth : null,
    }.ToJsonString();

    /// <summary>
    /// Roughly the network evaluations one model's run takes (for <c>--status</c> and <c>--until</c>): chains of
    /// <see cref="Steps"/> steps, forward passes at each grid point, and exposure-bias's reconstructions from 0.01T, 0.1T,
    /// 0.6T and T − 1 with a DDPM and a DDIM chain each.
    /// </summary>
    public double Evaluations(int T)
    {
        int points = GridPoints + 1;
        double recon = ExposureBias.ReconstructionStarts(T).Sum(s => Math.Clamp(Math.Round(Steps * (s + 1.0) / T), 2, s + 1));
        return (double)N * Name switch
        {
            "exposure-bias" => 2 * Steps + 2 * recon,
            "x0-bias" => points,
            "lipschitz" => 2 * points,
            _ => Steps,
        };
    }
}

/// <summary>
/// Runs a plan's diagnostics on a job's checkpoint and draws them from the result files: the per-model result of each
/// diagnostic is kept in the job's result JSON (<c>diagnostics.NAME.result</c>, the diagnostic's own result record as
/// JSON), and the report reads them back and writes the same CSV, JSON and PNG <c>diffusion diagnose</c> writes, with
/// the baseline and the remedies overlaid — so the diagnostic plots too are regenerated from the committed JSON alone.
/// </summary>
public static class StudyDiagnostics
{
    /// <summary>The result records as JSON: non-finite numbers written as "NaN" / "Infinity" (a Lipschitz K can be).</summary>
    public static readonly JsonSerializerOptions Json = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>One model's run: its result record as JSON, with the diagnostic's name, settings, network evaluations and seconds.</summary>
    public static JsonObject Run(StudyDiagnostic d, string checkpoint, string label)
    {
        var sw = Stopwatch.StartNew();
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        using var m = DiagnosticModel.FromCheckpoint(checkpoint, label);
        var s = d.Settings;
        JsonNode? result = d.Name switch
        {
            "exposure-bias" => JsonSerializer.SerializeToNode(ExposureBias.Run(m, s), Json),
            "x0-bias" => JsonSerializer.SerializeToNode(X0Bias.Run(m, s), Json),
            "lipschitz" => JsonSerializer.SerializeToNode(LipschitzProbe.Run(m, s, d.Delta), Json),
            "error-propagation" => JsonSerializer.SerializeToNode(ErrorPropagation.Run(m, s, d.Permutations, MmdBandwidth.Parse(d.Bandwidth)), Json),
            _ => throw new UserError($"study diagnostic '{d.Name}': expected one of {string.Join(", ", StudyDiagnostic.Names)}"),
        };
        return new JsonObject
        {
            ["diagnostic"] = d.Name,
            ["label"] = label,
            ["held_out"] = m.HeldOutSource,
            ["nfe"] = Math.Round(d.Evaluations(m.Schedule.T)),
            ["seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 3),
            ["cpu_seconds"] = Math.Round((Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds, 3),
            ["result"] = result,
        };
    }

    /// <summary>
    /// Writes NAME.csv, NAME.json and NAME.png into <paramref name="dir"/> from the per-model runs (<see cref="Run"/>'s
    /// objects, in plot order), exactly as <c>diffusion diagnose NAME</c> writes them for those models.
    /// </summary>
    public static void Write(StudyDiagnostic d, IReadOnlyList<JsonObject> runs, string dir)
    {
        var s = d.Settings;
        List<T> Results<T>() => runs.Select(r => r["result"].Deserialize<T>(Json) ?? throw new UserError($"study diagnostic {d.Name}: a result without its record")).ToList();
        switch (d.Name)
        {
            case "exposure-bias": ExposureBias.Write(dir, Results<ExposureBias.Result>(), s); break;
            case "x0-bias": X0Bias.Write(dir, Results<X0Bias.Result>(), s); break;
            case "lipschitz": LipschitzProbe.Write(dir, Results<LipschitzProbe.Result>(), s); break;
            case "error-propagation": ErrorPropagation.Write(dir, Results<ErrorPropagation.Result>(), s, d.Permutations); break;
            default: throw new UserError($"study diagnostic '{d.Name}': expected one of {string.Join(", ", StudyDiagnostic.Names)}");
        }
    }

    /// <summary>
    /// One number per model that the report prints beside the plot: exposure-bias's mean ε-norm gap, x0-bias's MSE at the
    /// smallest t, Lipschitz K at the smallest t and its largest value, error-propagation's count of t where MMD² exceeds the null's 95th percentile.
    /// </summary>
    public static string Summary(StudyDiagnostic d, JsonObject run)
    {
        var c = CultureInfo.InvariantCulture;
        var r = run["result"]!;
        switch (d.Name)
        {
            case "exposure-bias":
            {
                var x = r.Deserialize<ExposureBias.Result>(Json)!;
                return string.Create(c, $"mean ε-norm gap {StudyReport.Number(x.Gap.Average(g => g.Gap))} (chain − forward, mean ‖ε̂‖²/D over the {x.Gap.Count} visited t)");
            }
            case "x0-bias":
            {
                var x = r.Deserialize<X0Bias.Result>(Json)!;
                var first = x.Rows[0];
                return $"x̂0 MSE at t = {first.T}: {StudyReport.Number(first.Mse.Mean)}; bias size there {StudyReport.Number(first.BiasRms)} (floor {StudyReport.Number(first.BiasRmsFloor)})";
            }
            case "lipschitz":
            {
                var x = r.Deserialize<LipschitzProbe.Result>(Json)!;
                var first = x.Rows[0];
                var max = x.Rows.MaxBy(w => w.K.Mean)!;
                return $"K(t = {first.T}) = {StudyReport.Number(first.K.Mean)}; largest K(t = {max.T}) = {StudyReport.Number(max.K.Mean)}";
            }
            default:
            {
                var x = r.Deserialize<ErrorPropagation.Result>(Json)!;
                int above = x.Rows.Count(w => w.Mmd2 > w.Null95);
                return $"MMD² above the null's 95th percentile at {above} of {x.Rows.Count} t; mean MMD² {StudyReport.Number(x.Rows.Average(w => w.Mmd2))}";
            }
        }
    }
}
