// Quality of bf16-mixed against float32 at the demo's budget: the demo config trained in each precision with two
// seeds, 1 000 samples each (DDIM 20 steps, seed 1, EMA weights), FID/KID/precision/recall in the Fashion-MNIST
// classifier's features against the test split — the measurement of docs/results/evaluation.md. Every stage is
// skipped when its output exists and a killed training resumes, so the study can be re-run until it is complete.
//   dotnet run -c Release --project experiments/precision -- [--runs DIR] [--reference fm-test.npz] [--threads N]
using System.Text.Json;
using System.Text.Json.Nodes;
using Diffusion.IO;
using Diffusion.Training;

string Arg(string name, string dflt) { int i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : dflt; }
string runs = Arg("--runs", "runs/precision");
string reference = Arg("--reference", "fm-test.npz");
string threads = Arg("--threads", "2");
string outDir = Arg("--results", "docs/results/precision");
Directory.CreateDirectory(outDir);

int Cli(params string[] a)
{
    Console.WriteLine("$ diffusion " + string.Join(' ', a));
    int rc = Diffusion.Cli.Entry.Run(a);
    if (rc != 0) throw new InvalidOperationException($"diffusion {a[0]} exited with {rc}");
    return rc;
}

if (!File.Exists(reference))
    Cli("eval", "--samples", "fashion-mnist", "--n", "1000", "--reference", "fashion-mnist:test", "--save-reference", reference, "--threads", threads, "--quiet");

// The demo config as it was when these numbers were measured (before 2026-12-02 11:00 UTC): unconditional, dropout 0.1, 800 steps.
string[] DemoAsMeasured = ["--set", "model.num-classes=0", "--set", "model.dropout=0.1", "--set", "train.steps=800", "--set", "sample.n=64", "--set", "sample.guidance=0"];
string[] precisions = ["float32", "bf16-mixed"];
long[] seeds = [0, 1];
foreach (var p in precisions)
    foreach (var seed in seeds)
    {
        string name = $"{p}-seed{seed}";
        string dir = Path.Combine(runs, name);
        if (!File.Exists(Path.Combine(dir, "metrics.json")))
        {
            if (File.Exists(Path.Combine(dir, "checkpoint.ckpt"))) Cli("train", "--resume", "--out", dir, "--threads", threads, "--quiet");
            else Cli(["train", "--config", "demo", .. DemoAsMeasured, "--precision", p, "--seed", seed.ToString(), "--out", dir, "--force", "--threads", threads, "--quiet"]);
        }
        string samples = Path.Combine(dir, "ddim20-seed1.npy");
        if (!File.Exists(samples))
        {
            string tmp = samples + ".tmp.npy";
            Cli("sample", "--checkpoint", dir, "--sampler", "ddim", "--steps", "20", "--n", "1000", "--seed", "1", "--out", tmp, "--threads", threads, "--quiet");
            File.Move(tmp, samples, overwrite: true);
        }
        string result = Path.Combine(outDir, name + ".json");
        if (!File.Exists(result))
        {
            var sw = new StringWriter();
            var stdout = Console.Out;
            Console.SetOut(sw);
            try { Cli("eval", "--samples", samples, "--reference", reference, "--format", "json", "--threads", threads, "--quiet"); }
            finally { Console.SetOut(stdout); }
            var text = sw.ToString();
            var eval = JsonNode.Parse(text[text.IndexOf('{')..])!.AsObject();
            var metrics = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "metrics.json")))!.AsObject();
            var doc = new JsonObject
            {
                ["run"] = name, ["precision"] = p, ["seed"] = seed,
                ["train"] = metrics.DeepClone(),
                ["samples"] = "1000, DDIM 20 steps, seed 1, EMA weights",
                ["eval"] = eval,
            };
            Diffusion.Util.AtomicFile.WriteAllText(result, doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        }
        Console.WriteLine($"{name}: done");
    }

// Loss curves overlaid, smoothed over 10 log entries (100 steps).
var series = new List<(string, double[], double[])>();
foreach (var p in precisions)
    foreach (var seed in seeds)
    {
        var log = RunLog.Read(Path.Combine(runs, $"{p}-seed{seed}", RunLog.FileName));
        var y = log.Select((e, i) => log.Skip(Math.Max(0, i - 9)).Take(Math.Min(10, i + 1)).Average(x => x.Loss)).ToArray();
        series.Add(($"{p}, seed {seed}", log.Select(e => (double)e.Step).ToArray(), y));
    }
Plots.Lines(Path.Combine(outDir, "loss.png"), "Demo UNet on Fashion-MNIST: training loss, float32 vs bf16-mixed", "step", "loss (mean of 10 log entries)", series, logY: true);

// Table.
Console.WriteLine("\n| run | train samples/s | final loss | FID | KID | precision | recall |\n|---|---|---|---|---|---|---|");
foreach (var f in Directory.GetFiles(outDir, "*.json").Order())
{
    var d = JsonNode.Parse(File.ReadAllText(f))!;
    var e = d["eval"]!;
    Console.WriteLine($"| {d["run"]} | {d["train"]!["train_samples_per_second"]} | {d["train"]!["final_loss"]} | {e["fid"]} | {e["kid"]} ± {e["kid_std"]} | {e["precision"]} | {e["recall"]} |");
}
