// Errors of DDIM and the DPM-Solver family on the exact model of a 2-D Gaussian mixture, against an
// independent, converged solve of the same probability-flow ODE (docs/results/samplers.md).
//
//   dotnet run -c Release --project experiments/samplers [-- --out docs/results]
//
// Writes samplers.json (every number), samplers.csv (the tables) and samplers.png (error against steps,
// log-log) into the output folder, and prints the markdown tables.
using System.Globalization;
using System.Text.Json;
using Diffusion.Models;
using Diffusion.Sampling;
using Diffusion.Schedules;
using ScottPlot;
using static TorchSharp.torch;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
string outDir = args.Length == 2 && args[0] == "--out" ? args[1] : "docs/results";
Directory.CreateDirectory(outDir);
set_num_threads(1);   // tiny tensors: one thread is fastest and keeps the shared machine free

// The mixture (the test suite's SmallMixture), the schedule, and the noise.
double[] weights = [0.5, 0.3, 0.2];
double[][] means = [[-1.0, 0.5], [1.0, 1.0], [0.5, -1.2]];
double[] stds = [0.3, 0.2, 0.4];
var mixture = new GaussianMixture(weights, means, stds);
var schedule = NoiseSchedule.Linear(1000);
var den = new GaussianMixtureDenoiser(mixture, schedule);
const int N = 1000;
const ulong Seed = 2024;
var xT = randn([N, 2], dtype: ScalarType.Float64, generator: new Generator(Seed));
var vp = ContinuousVp.ForSolver(schedule);
var clock = System.Diagnostics.Stopwatch.StartNew();

double Err(Tensor a, Tensor b) { using var d = (a - b).pow(2).sum(1).sqrt().mean(); return d.item<double>(); }

// ---- The reference: classical RK4 in λ on y = x/σ, dy/dλ = y − ε*(σ(λ)·y, λ), 1000 uniform λ steps ----
Tensor Rk4(int steps) => new ProbabilityFlowRk4(schedule, steps).Sample(den, xT, null);

Tensor Dpm(int steps, int order, string alg, string method, string skip, bool referenceCoefficient = false) =>
    new DpmSolver(schedule, steps, order, alg, method, skip) { ReferenceThirdOrderMultistep = referenceCoefficient }.Sample(den, xT, null);
Tensor Ddim(int steps) => new DdimSampler(schedule, Respacing.Timesteps("uniform", 1000, steps), 0.0, false).Sample(den, xT, null);
// k-diffusion's Euler and Heun in σ on Karras noise levels; their last step to σ = 0 returns x̂0 at σ_min, like DDIM's.
Tensor Karras(int levels, bool heun) => new KarrasSamplers(schedule, levels, heun).Sample(den, xT, null);
int HeunLevels(int evaluations) => (evaluations + 1) / 2;   // 2n − 1 evaluations, at most the column's

var reference = Rk4(1000);
// DDIM's last step returns x̂0 at step 0: its limit is the ODE's endpoint mapped through x̂0 at t = 1/N.
Tensor refX0;
{
    using var eps = den.Predict(reference, schedule.Step(0, reference));
    refX0 = (reference - eps * vp.Sigma(vp.TMin)) / vp.Alpha(vp.TMin);
}
var checks = new Dictionary<string, double>
{
    ["rk4_500_steps"] = Err(Rk4(500), reference),
    ["dpm_solver_pp_3M_logSNR_1000_steps"] = Err(Dpm(1000, 3, "dpmsolver++", "multistep", "logSNR"), reference),
    ["dpm_solver_3_singlestep_logSNR_3002_evaluations"] = Err(Dpm(3002, 3, "dpmsolver", "singlestep", "logSNR"), reference),
};
Console.WriteLine($"reference checks ({clock.Elapsed.TotalSeconds:F0}s): " + string.Join(", ", checks.Select(kv => $"{kv.Key} {kv.Value:E2}")));

// ---- The variants ----
var variants = new List<(string Name, string Algorithm, string Method, int Order)> { ("DPM-Solver-1 (either form)", "dpmsolver", "singlestep", 1) };
foreach (var (alg, label) in new[] { ("dpmsolver", "DPM-Solver"), ("dpmsolver++", "DPM-Solver++") })
{
    variants.Add(($"{label}-2S (singlestep 2)", alg, "singlestep", 2));
    variants.Add(($"{label}-3S (singlestep 3)", alg, "singlestep", 3));
    variants.Add(($"{label}-2M (multistep 2)", alg, "multistep", 2));
    variants.Add(($"{label}-3M (multistep 3)", alg, "multistep", 3));
}
int[] tableSteps = [5, 10, 15, 20, 50];
string[] skips = ["logSNR", "time-uniform", "time-quadratic"];

var table = new Dictionary<string, Dictionary<string, double[]>>();
var ddimRow = tableSteps.Select(s => Err(Ddim(s), refX0)).ToArray();
var eulerRow = tableSteps.Select(s => Err(Karras(s, false), refX0)).ToArray();
var heunRow = tableSteps.Select(s => Err(Karras(HeunLevels(s), true), refX0)).ToArray();
foreach (var skip in skips)
{
    var rows = new Dictionary<string, double[]>
    {
        ["DDIM (η = 0, uniform integer steps)"] = ddimRow,
        ["Euler (k-diffusion, Karras σ, ρ = 7)"] = eulerRow,
        ["Heun (EDM, Karras σ, ρ = 7; 2n − 1 evaluations ≤ the column's)"] = heunRow,
    };
    foreach (var v in variants) rows[v.Name] = tableSteps.Select(s => Err(Dpm(s, v.Order, v.Algorithm, v.Method, skip), reference)).ToArray();
    table[skip] = rows;
}
Console.WriteLine($"tables done ({clock.Elapsed.TotalSeconds:F0}s)");

// ---- Convergence: error against steps (logSNR), and least-squares slopes of log error on log steps ----
// Step counts that respect each allocation: even for singlestep order 2, ≡ 2 (mod 3) for singlestep order 3.
int[] Grid(string method, int order) => (method, order) switch
{
    ("singlestep", 2) => [10, 14, 20, 30, 40, 60, 80, 120, 160, 240],
    ("singlestep", 3) => [11, 14, 20, 29, 41, 59, 80, 119, 161, 239],
    _ => [10, 14, 20, 30, 40, 60, 80, 120, 160, 240],
};
static double Slope(IEnumerable<(int Steps, double Err)> pts)
{
    var p = pts.ToArray();
    var xs = p.Select(q => Math.Log(q.Steps)).ToArray();
    var ys = p.Select(q => -Math.Log(q.Err)).ToArray();
    double mx = xs.Average(), my = ys.Average();
    return xs.Zip(ys).Sum(q => (q.First - mx) * (q.Second - my)) / xs.Sum(v => (v - mx) * (v - mx));
}
var curves = new List<(string Name, int[] Steps, double[] Errors)>();
{
    var g = new[] { 10, 14, 20, 30, 40, 60, 80, 120, 160, 240 };
    curves.Add(("DDIM (η = 0)", g, g.Select(s => Err(Ddim(s), refX0)).ToArray()));
    curves.Add(("Euler (Karras σ)", g, g.Select(s => Err(Karras(s, false), refX0)).ToArray()));
    var levels = new[] { 5, 7, 10, 15, 20, 30, 40, 60, 80, 120 };
    curves.Add(("Heun (Karras σ), by evaluations 2n − 1", levels.Select(n => 2 * n - 1).ToArray(), levels.Select(n => Err(Karras(n, true), refX0)).ToArray()));
}
foreach (var v in variants)
{
    var g = Grid(v.Method, v.Order);
    curves.Add((v.Name, g, g.Select(s => Err(Dpm(s, v.Order, v.Algorithm, v.Method, "logSNR"), reference)).ToArray()));
}
foreach (var alg in new[] { "dpmsolver", "dpmsolver++" })
{
    var g = Grid("multistep", 3);
    curves.Add(($"{(alg == "dpmsolver" ? "DPM-Solver" : "DPM-Solver++")}-3M, reference-code D₂", g, g.Select(s => Err(Dpm(s, 3, alg, "multistep", "logSNR", true), reference)).ToArray()));
}
var windows = new (string Name, int Lo, int Hi)[] { ("30–120", 29, 120), ("40–160", 40, 161), ("60–240", 59, 240) };
var slopes = curves.ToDictionary(c => c.Name, c => windows.ToDictionary(w => w.Name,
    w => Slope(c.Steps.Zip(c.Errors).Where(p => p.First >= w.Lo && p.First <= w.Hi))));
Console.WriteLine($"curves done ({clock.Elapsed.TotalSeconds:F0}s)");

// ---- Output ----
string F(double v) => v.ToString(v < 1e-3 ? "0.00E+0" : "0.0000", CultureInfo.InvariantCulture);
var md = new System.Text.StringBuilder();
foreach (var skip in skips)
{
    md.AppendLine($"Skip type `{skip}` (DDIM: its own uniform integer timesteps, the same row in every table):");
    md.AppendLine();
    md.AppendLine("| sampler | " + string.Join(" | ", tableSteps.Select(s => $"{s} steps")) + " |");
    md.AppendLine("|---|" + string.Concat(tableSteps.Select(_ => "---|")));
    foreach (var (name, errs) in table[skip]) md.AppendLine($"| {name} | " + string.Join(" | ", errs.Select(F)) + " |");
    md.AppendLine();
}
md.AppendLine("Fitted convergence slopes (logSNR skip; least squares of −log error on log steps):");
md.AppendLine();
md.AppendLine("| sampler | " + string.Join(" | ", windows.Select(w => $"steps {w.Name}")) + " |");
md.AppendLine("|---|" + string.Concat(windows.Select(_ => "---|")));
foreach (var (name, s) in slopes) md.AppendLine($"| {name} | " + string.Join(" | ", windows.Select(w => s[w.Name].ToString("F2", CultureInfo.InvariantCulture))) + " |");
Console.WriteLine(md);

var csv = new System.Text.StringBuilder("skip,sampler," + string.Join(",", tableSteps.Select(s => $"steps_{s}")) + "\n");
foreach (var skip in skips)
    foreach (var (name, errs) in table[skip])
        csv.AppendLine($"{skip},\"{name}\"," + string.Join(",", errs.Select(e => e.ToString("R", CultureInfo.InvariantCulture))));
File.WriteAllText(Path.Combine(outDir, "samplers.csv"), csv.ToString());

var json = new
{
    mixture = new { weights, means, stds },
    schedule = "linear, T = 1000",
    continuous_view = new { N = vp.N, dropped_tail = vp.DroppedTail, t_start = vp.TMax, t_end = vp.TMin, lambda_start = vp.Lambda(vp.TMax), lambda_end = vp.Lambda(vp.TMin) },
    samples = N,
    noise_seed = Seed,
    error = "mean over samples of the Euclidean distance to the reference's final sample, float64",
    reference = "RK4 in lambda on y = x/sigma, 1000 uniform lambda steps (4000 evaluations), t = 1 to t = 1/N; DDIM, Euler and Heun against its x0 map at t = 1/N",
    reference_checks = checks,
    table_steps = tableSteps,
    tables = table,
    curves = curves.Select(c => new { name = c.Name, steps = c.Steps, errors = c.Errors }),
    slopes,
    seconds = Math.Round(clock.Elapsed.TotalSeconds, 1),
};
File.WriteAllText(Path.Combine(outDir, "samplers.json"), JsonSerializer.Serialize(json, new JsonSerializerOptions { WriteIndented = true }));

// Log-log plot: ScottPlot has no log axis, so plot log10 values with power-of-ten tick labels.
var plt = new Plot();
var palette = new ScottPlot.Palettes.Category10();
int ci = 0;
foreach (var c in curves.Where(c => !c.Name.Contains("reference-code")))
{
    var sc = plt.Add.Scatter(c.Steps.Select(s => Math.Log10(s)).ToArray(), c.Errors.Select(Math.Log10).ToArray());
    sc.LegendText = c.Name;
    sc.Color = palette.GetColor(ci++);
    sc.LineWidth = 1.5f;
    sc.MarkerSize = 4;
    if (c.Name.Contains("DPM-Solver-") && !c.Name.Contains("++")) sc.LinePattern = LinePattern.Dashed;
}
double[] xt = [10, 20, 30, 50, 100, 200], yt = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1];
plt.Axes.Bottom.SetTicks(xt.Select(Math.Log10).ToArray(), xt.Select(v => v.ToString(CultureInfo.InvariantCulture)).ToArray());
plt.Axes.Left.SetTicks(yt.Select(Math.Log10).ToArray(), yt.Select(v => v.ToString("0.#E+0", CultureInfo.InvariantCulture)).ToArray());
plt.Title("Error against the reference ODE solve (2-D mixture, logSNR skip)");
plt.XLabel("network evaluations (steps), log scale");
plt.YLabel("mean distance to reference, log scale");
plt.ShowLegend(Alignment.LowerLeft);
plt.SavePng(Path.Combine(outDir, "samplers.png"), 1000, 700);
Console.WriteLine($"wrote {outDir}/samplers.json, samplers.csv, samplers.png ({clock.Elapsed.TotalSeconds:F0}s)");
