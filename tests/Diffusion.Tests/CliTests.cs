using System.Diagnostics;
using Diffusion.Data;
using Diffusion.Models;
using Diffusion.Sampling;
using Diffusion.Schedules;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>The command-line program, run as a user runs it.</summary>
public class CliTests
{
    internal static (int Code, string Out, string Err) Run(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "diffusion.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    internal static void AssertOneLineError((int Code, string Out, string Err) r, string contains)
    {
        Assert.NotEqual(0, r.Code);
        var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr, got:\n{r.Err}");
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(contains, lines[0]);
    }

    [Fact]
    public void Usage_and_option_errors_are_one_line()
    {
        var r = Run();
        Assert.Equal(2, r.Code);
        Assert.Contains("usage: diffusion", r.Out);
        Assert.Equal(0, Run("train", "--help").Code);
        AssertOneLineError(Run("frobnicate"), "unknown command 'frobnicate'");
        AssertOneLineError(Run("train", "--data", "toy:moons", "--stepz", "3"), "unknown option --stepz");
        AssertOneLineError(Run("train", "--data", "toy:moons", "--steps", "many"), "--steps expects an integer");
        AssertOneLineError(Run("train", "--data", "toy:moons", "--set", "model.nope=1", "--out", TestUtil.TempDir("x")), "unknown key 'model.nope'");
        AssertOneLineError(Run("train"), "give --config FILE");
        AssertOneLineError(Run("train", "--config", "/nonexistent/c.toml"), "file not found");
        AssertOneLineError(Run("train", "--data", "npy:/nonexistent.npy"), "/nonexistent.npy: file not found");
        AssertOneLineError(Run("sample", "--out", "x.npy"), "give exactly one of --checkpoint");
        AssertOneLineError(Run("sample", "--checkpoint", "/nonexistent", "--out", "x.npy"), "no such file or run folder");
        AssertOneLineError(Run("sample", "--model", "gmm:/nonexistent.json", "--out", "x.npy"), "file not found");
    }

    [Fact]
    public void Train_then_sample_from_the_checkpoint()
    {
        var dir = TestUtil.TempDir("cli-run");
        var run = Path.Combine(dir, "run");
        var r = Run("train", "--data", "toy:moons?n=2000", "--steps", "30", "--out", run, "--quiet",
                    "--set", "model.hidden=32", "--set", "train.batch-size=64", "--set", "sample.n=50", "--set", "sample.steps=20");
        Assert.True(r.Code == 0, r.Err);
        foreach (var f in new[] { "checkpoint.ckpt", "config.json", "log.jsonl", "loss.png", "samples.png", "samples.npy", "metrics.json" })
            Assert.True(File.Exists(Path.Combine(run, f)), f);
        AssertOneLineError(Run("train", "--data", "toy:moons?n=2000", "--steps", "30", "--out", run), "already holds a run");

        var outNpy = Path.Combine(dir, "s.npy");
        r = Run("sample", "--checkpoint", run, "--sampler", "ddim", "--steps", "10", "--n", "16", "--out", outNpy, "--quiet");
        Assert.True(r.Code == 0, r.Err);
        using (var s = Npy.Read(outNpy)) Assert.Equal(new long[] { 16, 2 }, s.shape);
        r = Run("sample", "--checkpoint", Path.Combine(run, "checkpoint.ckpt"), "--sampler", "ddpm", "--steps", "25", "--n", "8", "--out", Path.Combine(dir, "s.png"), "--quiet");
        Assert.True(r.Code == 0, r.Err);
        Assert.True(new FileInfo(Path.Combine(dir, "s.png")).Length > 1000);
        r = Run("sample", "--checkpoint", run, "--sampler", "dpm-solver", "--method", "singlestep", "--order", "3", "--steps", "8", "--n", "16", "--out", outNpy, "--quiet");
        Assert.True(r.Code == 0, r.Err);
        using (var s = Npy.Read(outNpy)) Assert.True(s.isfinite().all().item<bool>() && s.shape.SequenceEqual(new long[] { 16, 2 }));

        // Resume to more steps continues the log where it stopped.
        r = Run("train", "--resume", "--out", run, "--steps", "40", "--quiet");
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains($"resuming {run} at step 30", r.Err);
        var header = Diffusion.Training.Checkpoint.ReadHeader(Path.Combine(run, "checkpoint.ckpt"));
        Assert.Equal(40, header.Step);
        // metrics.json: the same keys as ever; the total training time is the one the checkpoint saved.
        var metrics = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(run, "metrics.json")))!.AsObject();
        Assert.Equal(["data", "remedies", "steps", "batch_size", "parameters", "threads", "precision", "train_seconds_total", "train_seconds_this_run",
                      "train_samples_per_second", "final_loss", "sampler", "samples", "sample_seconds", "wall_seconds_this_command"],
                     metrics.Select(kv => kv.Key));
        Assert.Equal(40, metrics["steps"]!.GetValue<long>());
        Assert.Equal(Math.Round(header.ElapsedSeconds, 2), metrics["train_seconds_total"]!.GetValue<double>());
        // --resume takes the new-run flags again when they leave the saved config as it is, and refuses one that changes it.
        AssertOneLineError(Run("train", "--resume", "--out", run, "--set", "train.lr=1"), "--resume: --set train.lr=1 differs from the saved train.lr 0.001");
        AssertOneLineError(Run("train", "--resume", "--out", run, "--data", "toy:gmm-grid"), "--resume: --data toy:gmm-grid differs from the saved data.spec toy:moons?n=2000");
        r = Run("train", "--resume", "--out", run, "--data", "toy:moons?n=2000", "--set", "model.hidden=32", "--set", "train.lr=1e-3", "--steps", "40", "--quiet");
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains($"resuming {run} at step 40", r.Err);
        // A train running in the folder (here: a lock naming this live test process) is refused in one line.
        Diffusion.Training.RunLock.Write(Path.Combine(run, "train.lock"), new(Environment.ProcessId, Environment.MachineName, DateTime.UtcNow));
        AssertOneLineError(Run("train", "--resume", "--out", run, "--steps", "50"), $"another train is running there (process {Environment.ProcessId} on {Environment.MachineName}");
        File.Delete(Path.Combine(run, "train.lock"));
        // 64 bytes flipped in the middle of the EMA section: sample refuses in one line naming the section (exit 1).
        var damaged = Path.Combine(dir, "damaged.ckpt");
        File.Copy(Path.Combine(run, "checkpoint.ckpt"), damaged);
        TestUtil.DamageSection(damaged, "ema");
        r = Run("sample", "--checkpoint", damaged, "--out", outNpy);
        Assert.Equal(1, r.Code);
        AssertOneLineError(r, $"checkpoint {damaged}: section 'ema' is damaged (SHA-256 mismatch)");

        var bytes = File.ReadAllBytes(Path.Combine(run, "checkpoint.ckpt"));
        File.WriteAllBytes(Path.Combine(dir, "cut.ckpt"), bytes[..(bytes.Length - 200)]);
        AssertOneLineError(Run("sample", "--checkpoint", Path.Combine(dir, "cut.ckpt"), "--out", outNpy), "corrupt or truncated");
        AssertOneLineError(Run("sample", "--checkpoint", run, "--steps", "5000", "--out", outNpy), "exceeds the schedule's T = 1000");

        // export → safetensors + config.json; a new run starts from them; a resume cannot take --init-weights.
        var exported = Path.Combine(dir, "exported");
        r = Run("export", "--checkpoint", run, "--format", "safetensors", "--out", exported);
        Assert.True(r.Code == 0, r.Err);
        Assert.True(File.Exists(Path.Combine(exported, "model.safetensors")) && File.Exists(Path.Combine(exported, "config.json")));
        var run2 = Path.Combine(dir, "run2");
        r = Run("train", "--data", "toy:moons?n=2000", "--steps", "5", "--out", run2, "--quiet", "--set", "model.hidden=32",
                "--set", "train.batch-size=64", "--set", "sample.n=10", "--set", "sample.steps=5", "--init-weights", Path.Combine(exported, "model.safetensors"));
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("model and EMA start from", r.Err);
        Assert.Contains("\"init-weights\"", File.ReadAllText(Path.Combine(run2, "config.json")));
        AssertOneLineError(Run("train", "--resume", "--out", run2, "--init-weights", Path.Combine(exported, "model.safetensors")), "--init-weights cannot change it");
        AssertOneLineError(Run("export", "--checkpoint", run, "--format", "onnx", "--out", exported), "expected safetensors");
        AssertOneLineError(Run("export", "--out", exported), "--checkpoint");
        Assert.Equal(0, Run("export", "--help").Code);
    }

    /// <summary>The test mixture's spec.json and <paramref name="n"/> rows of float64 noise (noise.npy) in <paramref name="dir"/>.</summary>
    private static (string Spec, string NoisePath, Tensor Noise) ExactModelInputs(string dir, int n)
    {
        var spec = Path.Combine(dir, "spec.json");
        File.WriteAllText(spec, """{"weights":[0.5,0.3,0.2], "means":[[-1,0.5],[1,1],[0.5,-1.2]], "stds":[0.3,0.2,0.4], "schedule":{"name":"linear","T":1000}}""");
        var noise = randn([n, 2], dtype: ScalarType.Float64, generator: new Generator(9));
        var noisePath = Path.Combine(dir, "noise.npy");
        Npy.Write(noisePath, noise);
        return (spec, noisePath, noise);
    }

    [Fact]
    public void Exact_model_path_uses_the_given_noise_and_no_other_randomness()
    {
        var dir = TestUtil.TempDir("cli-gmm");
        var (spec, noisePath, noise) = ExactModelInputs(dir, 64);
        using var _ = noise;
        string a = Path.Combine(dir, "a.npy"), b = Path.Combine(dir, "b.npy");
        var r1 = Run("sample", "--model", $"gmm:{spec}", "--sampler", "ddim", "--steps", "25", "--init-noise", noisePath, "--dtype", "float64", "--seed", "1", "--out", a, "--quiet");
        var r2 = Run("sample", "--model", $"gmm:{spec}", "--sampler", "ddim", "--steps", "25", "--init-noise", noisePath, "--dtype", "float64", "--seed", "2", "--out", b, "--quiet");
        Assert.True(r1.Code == 0, r1.Err);
        Assert.True(r2.Code == 0, r2.Err);
        Assert.Contains("25 denoiser evaluations", r1.Err);
        using var ya = Npy.Read(a);
        using var yb = Npy.Read(b);
        Assert.Equal(ScalarType.Float64, ya.dtype);
        Assert.True(ya.equal(yb).all().item<bool>(), "a deterministic sampler must not depend on --seed");
        // Same as the library's DDIM on the same noise.
        var (gmm, sc) = GaussianMixture.Load(spec);
        var schedule = sc.Build();
        using var expected = new DdimSampler(schedule, Respacing.Timesteps("uniform", 1000, 25), 0, false).Sample(new GaussianMixtureDenoiser(gmm, schedule), noise, null);
        Assert.True(ya.equal(expected).all().item<bool>());

        File.WriteAllText(Path.Combine(dir, "bad.json"), """{"weights":[1], "means":[[0,0]], "stds":[0.1], "colour":"red"}""");
        AssertOneLineError(Run("sample", "--model", $"gmm:{Path.Combine(dir, "bad.json")}", "--out", a), "not a valid mixture spec");
        using var wrong = randn([4, 3], dtype: ScalarType.Float64);
        Npy.Write(Path.Combine(dir, "wrong.npy"), wrong);
        AssertOneLineError(Run("sample", "--model", $"gmm:{spec}", "--init-noise", Path.Combine(dir, "wrong.npy"), "--out", a), "expected shape (N, 2)");
    }

    [Fact]
    public void Dpm_solver_and_epsilon_scaling_on_the_exact_model()
    {
        var dir = TestUtil.TempDir("cli-dpm");
        var (spec, noisePath, noise) = ExactModelInputs(dir, 32);
        using var _ = noise;
        string a = Path.Combine(dir, "a.npy"), b = Path.Combine(dir, "b.npy");
        string[] common = ["sample", "--model", $"gmm:{spec}", "--init-noise", noisePath, "--dtype", "float64", "--quiet"];
        var r = Run([.. common, "--sampler", "dpm-solver", "--algorithm", "dpmsolver", "--method", "singlestep", "--order", "3", "--steps", "13", "--skip", "logSNR", "--out", a]);
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("13 denoiser evaluations", r.Err);
        Assert.Contains("dpm-solver singlestep order 3", r.Err);
        var (gmm, sc) = GaussianMixture.Load(spec);
        var schedule = sc.Build();
        using (var got = Npy.Read(a))
        using (var expected = new DpmSolver(schedule, 13, 3, "dpmsolver", "singlestep", "logSNR").Sample(new GaussianMixtureDenoiser(gmm, schedule), noise, null))
            Assert.True(got.equal(expected).all().item<bool>());

        // Epsilon scaling on DDIM equals DDIM on the wrapped denoiser.
        r = Run([.. common, "--sampler", "ddim", "--steps", "10", "--eps-scale-b", "1.01", "--out", b]);
        Assert.True(r.Code == 0, r.Err);
        using (var got = Npy.Read(b))
        using (var expected = new DdimSampler(schedule, Respacing.Timesteps("uniform", 1000, 10), 0, false)
                   .Sample(new EpsilonScaledDenoiser(new GaussianMixtureDenoiser(gmm, schedule), schedule.T, 1.01), noise, null))
            Assert.True(got.equal(expected).all().item<bool>());

        AssertOneLineError(Run([.. common, "--sampler", "ddim", "--skip", "logSNR", "--out", a]), "--skip applies to --sampler dpm-solver only");
        // Heun through the registry: 10 noise levels, 19 evaluations, the same numbers as the library's sampler.
        r = Run([.. common, "--sampler", "heun", "--steps", "10", "--rho", "5", "--out", a]);
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("19 denoiser evaluations", r.Err);
        using (var got = Npy.Read(a))
        using (var expected = new KarrasSamplers(schedule, 10, heun: true, rho: 5).Sample(new GaussianMixtureDenoiser(gmm, schedule), noise, null))
            Assert.True(got.equal(expected).all().item<bool>());
        AssertOneLineError(Run([.. common, "--sampler", "ddim", "--rho", "5", "--out", a]), "--rho: applies to sampler euler and heun only");
        AssertOneLineError(Run([.. common, "--sampler", "euler", "--rho", "-1", "--out", a]), "--rho: expected a positive number");
        AssertOneLineError(Run([.. common, "--sampler", "dpm-solver", "--spacing", "uniform", "--out", a]), "--spacing applies to --sampler ddpm and ddim only");
        AssertOneLineError(Run([.. common, "--sampler", "dpm-solver", "--order", "4", "--out", a]), "--order: expected 1, 2 or 3");
        AssertOneLineError(Run([.. common, "--sampler", "dpm-solver", "--skip", "uniform", "--out", a]), "--skip: expected one of time-uniform, logSNR, time-quadratic");
        AssertOneLineError(Run([.. common, "--sampler", "dpm-solver", "--algorithm", "dpmsolver", "--clip", "--out", a]), "--algorithm dpmsolver++ only");
        AssertOneLineError(Run([.. common, "--sampler", "ddpm", "--eps-scale-b", "0", "--out", a]), "--eps-scale-b: expected a positive number");
        Assert.Contains("--sampler          ddpm, ddim, dpm-solver, euler or heun", Run("sample", "--help").Out);
    }
}
