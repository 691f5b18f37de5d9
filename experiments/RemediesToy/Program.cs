// The first look at the five remedies on toy:gmm-grid (issue 3): train the MLP with the baseline,
// each remedy alone and all five together for the same number of steps and seeds, then sample with
// DDPM at 10 (respaced) and 1000 backward steps and score the samples against the known 7×7 grid.
//
//   dotnet run --project experiments/RemediesToy -c Release -- [--steps 3000] [--seeds 0,1,2] [--out docs/results]
//
// Writes remedies-toy.json (every number) and remedies-toy.md (the table) into --out.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Diffusion.Config;
using Diffusion.Metrics;
using Diffusion.Sampling;
using Diffusion.Schedules;
using Diffusion.Training;
using TorchSharp;
using static TorchSharp.torch;

int steps = 3000;
var seeds = new List<long> { 0, 1, 2 };
string outDir = Path.Combine("docs", "results");
int samples = 2000;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--steps": steps = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--seeds": seeds = args[++i].Split(',').Select(long.Parse).ToList(); break;
        case "--out": outDir = args[++i]; break;
        case "--samples": samples = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        default: Console.Error.WriteLine($"unknown argument {args[i]}"); return 2;
    }
}
torch.set_num_threads(2);

var variants = new (string Name, string[] Sets)[]
{
    // The same defaults as diffusion train --remedy NAME.
    ("baseline", []),
    ("input perturbation (γ = 0.1)", Remedies.Find("input-perturbation")!.Preset),
    ("debiased weighting", Remedies.Find("debiased")!.Preset),
    ("E-TSDM (n = 5, t̃ = 100)", Remedies.Find("time-sharing")!.Preset),
    ("consistency (λ = 1, L = 5)", Remedies.Find("consistency")!.Preset),
    ("SMD (latent 16)", Remedies.Find("smd")!.Preset),
    ("all five", Remedies.Presets("all").ToArray()),
};
int[] sampleSteps = [10, 1000];
const int MinPerMode = 5;

var results = new List<Dictionary<string, object>>();
var root = Path.Combine(Path.GetTempPath(), $"remedies-toy-{Environment.ProcessId}");
var total = Stopwatch.StartNew();
foreach (var (name, sets) in variants)
{
    foreach (var seed in seeds)
    {
        var tree = ConfigLoader.EmbeddedTree("toy");
        foreach (var s in sets) ConfigLoader.ApplySet(tree, s);
        ConfigLoader.ApplySet(tree, $"train.steps={steps}");
        ConfigLoader.ApplySet(tree, $"train.seed={seed}");
        ConfigLoader.ApplySet(tree, "train.checkpoint-every=100000");
        var cfg = ConfigLoader.FromTree(tree, name);
        var dir = Path.Combine(root, $"{results.Count}");
        var sw = Stopwatch.StartNew();
        using var trainer = new Trainer(cfg, dir, resume: false);
        var losses = new List<double>();
        trainer.OnStepLoss = (_, l) => losses.Add(l);
        trainer.Run();
        double trainSeconds = sw.Elapsed.TotalSeconds;
        var row = new Dictionary<string, object>
        {
            ["variant"] = name, ["seed"] = seed, ["remedies"] = cfg.ActiveRemedies(), ["train_seconds"] = Math.Round(trainSeconds, 1),
            ["final_loss"] = Math.Round(losses.Skip(losses.Count - 100).Average(), 5),
        };
        using var denoiser = DenoiserStack.ForSampling(cfg, trainer.EmaModel, seed + 1000);
        foreach (int n in sampleSteps)
        {
            var sampler = new DdpmSampler(trainer.Schedule, Respacing.Timesteps("uniform", trainer.Schedule.T, n), fixedLarge: false, clipDenoised: false);
            using var gen = new Generator((ulong)(seed + 500));
            using var xT = randn([samples, 2], generator: gen);
            Tensor x;
            using (no_grad()) x = sampler.Sample(denoiser, xT, gen);
            var score = MixtureMetrics.Score(trainer.Data.Mixture!, x, MinPerMode);
            row[$"within3sigma_{n}"] = Math.Round(score.FractionWithin3Sigma, 4);
            row[$"modes_{n}"] = score.ModesCovered;
            row[$"loglik_{n}"] = Math.Round(score.MeanLogLikelihood, 3);
            x.Dispose();
        }
        results.Add(row);
        Console.Error.WriteLine($"{name,-30} seed {seed}: train {trainSeconds,6:F1}s, loss {row["final_loss"]}, " +
            string.Join(", ", sampleSteps.Select(n => $"{n} steps: {row[$"within3sigma_{n}"]:P1} within 3σ, {row[$"modes_{n}"]} modes")));
    }
}
try { Directory.Delete(root, recursive: true); } catch (IOException) { }

Directory.CreateDirectory(outDir);
var meta = new Dictionary<string, object>
{
    ["data"] = "toy:gmm-grid (49 Gaussians, means on {−1.5 … 1.5}², std 0.05, 50 000 points)",
    ["model"] = "configs/toy.toml: MLP, hidden 256, 4 blocks, eps-prediction, linear schedule T = 1000",
    ["train"] = $"{steps} steps, batch 512, AdamW lr 1e-3, EMA 0.999",
    ["sampling"] = $"DDPM fixed-small from the EMA weights, {samples} samples, uniform respacing, no clipping",
    ["modes_covered_rule"] = $"a mode counts as covered when at least {MinPerMode} samples lie within 3σ of it",
    ["seeds"] = seeds, ["minutes"] = Math.Round(total.Elapsed.TotalMinutes, 1), ["date_utc"] = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm"),
    ["results"] = results,
};
File.WriteAllText(Path.Combine(outDir, "remedies-toy.json"), JsonSerializer.Serialize(meta, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");

string MeanSd(IEnumerable<double> v, string fmt)
{
    var a = v.ToArray();
    double m = a.Average();
    double sd = a.Length > 1 ? Math.Sqrt(a.Sum(x => (x - m) * (x - m)) / (a.Length - 1)) : 0;
    return a.Length > 1 ? $"{m.ToString(fmt, CultureInfo.InvariantCulture)} ± {sd.ToString(fmt, CultureInfo.InvariantCulture)}" : m.ToString(fmt, CultureInfo.InvariantCulture);
}
var md = new StringBuilder();
md.AppendLine("| variant | within 3σ, 10 steps | modes, 10 steps | within 3σ, 1000 steps | modes, 1000 steps | final loss | train s |");
md.AppendLine("|---|---|---|---|---|---|---|");
foreach (var (name, _) in variants)
{
    var rows = results.Where(r => (string)r["variant"] == name).ToList();
    md.AppendLine($"| {name} | {MeanSd(rows.Select(r => 100 * (double)r["within3sigma_10"]), "F1")}% | {MeanSd(rows.Select(r => (double)(int)r["modes_10"]), "F1")} | " +
                  $"{MeanSd(rows.Select(r => 100 * (double)r["within3sigma_1000"]), "F1")}% | {MeanSd(rows.Select(r => (double)(int)r["modes_1000"]), "F1")} | " +
                  $"{MeanSd(rows.Select(r => (double)r["final_loss"]), "F4")} | {MeanSd(rows.Select(r => (double)r["train_seconds"]), "F0")} |");
}
File.WriteAllText(Path.Combine(outDir, "remedies-toy-table.md"), md.ToString());
Console.WriteLine(md.ToString());
Console.Error.WriteLine($"done in {total.Elapsed.TotalMinutes:F1} min; wrote {outDir}/remedies-toy.json and remedies-toy-table.md");
return 0;
