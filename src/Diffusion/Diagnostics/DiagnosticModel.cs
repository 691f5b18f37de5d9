using Diffusion.Config;
using Diffusion.Data;
using Diffusion.Models;
using Diffusion.Schedules;
using Diffusion.Training;
using static TorchSharp.torch;

namespace Diffusion.Diagnostics;

/// <summary>
/// A model under diagnosis: its denoiser, schedule, example shape and a source of held-out data.
/// Either a trained checkpoint (its config names the data and the schedule; the denoiser comes from
/// <see cref="TrainedModel.CreateDenoiser(long, SampleConfig?)"/>, so the wrappers a run's config asks for apply) or the exact
/// denoiser of a Gaussian mixture (<c>gmm:SPEC.json</c>), whose answers are known in closed form.
/// </summary>
public sealed class DiagnosticModel : IDisposable
{
    private readonly TrainedModel? trained;
    private Dataset? heldOut;
    private readonly string? dataSpec;
    private readonly string? dataDir;

    public string Label { get; }
    public IDenoiser Denoiser { get; }
    public NoiseSchedule Schedule { get; }
    public long[] ExampleShape { get; }
    public bool IsImage => ExampleShape.Length == 3;
    /// <summary>The true data distribution when it is a Gaussian mixture (exact model, toy:gmm-grid, gmm: data).</summary>
    public GaussianMixture? Mixture { get; }
    /// <summary>Where the held-out examples come from, for the outputs.</summary>
    public string HeldOutSource { get; }
    /// <summary>The data spec of the held-out examples; null when they are fresh draws from a known mixture.</summary>
    public string? HeldOutDataSpec => dataSpec;
    /// <summary>The folder of the data spec's files (Fashion-MNIST IDX, …), when the run's config names one.</summary>
    public string? DataDir => dataDir;

    private DiagnosticModel(string label, IDenoiser denoiser, NoiseSchedule schedule, long[] shape, GaussianMixture? mixture,
                            string heldOutSource, TrainedModel? trained, string? dataSpec, string? dataDir)
    {
        Label = label;
        Denoiser = denoiser;
        Schedule = schedule;
        ExampleShape = shape;
        Mixture = mixture;
        HeldOutSource = heldOutSource;
        this.trained = trained;
        this.dataSpec = dataSpec;
        this.dataDir = dataDir;
    }

    /// <summary>A trained run (folder or checkpoint file). <paramref name="dataOverride"/> replaces the held-out data spec.</summary>
    public static DiagnosticModel FromCheckpoint(string path, string? label = null, string weights = "ema", string? dataOverride = null)
    {
        var tm = TrainedModel.Load(path, weights);
        // Diagnostics measure small differences (finite-difference Lipschitz constants, ε-norm gaps): float32 arithmetic
        // whatever precision the run was trained in.
        tm.Network.Precision = Precision.Float32;
        try
        {
            string spec = dataOverride ?? HeldOutSpec(tm.Config.Data.Spec);
            GaussianMixture? mixture = MixtureOf(tm.Config.Data.Spec);
            string name = label ?? DefaultLabel(path);
            string source = mixture is not null && dataOverride is null ? $"fresh draws from the mixture of {tm.Config.Data.Spec}" : spec;
            return new DiagnosticModel(name, tm.CreateDenoiser(0), tm.Schedule, tm.ExampleShape, mixture, source, tm,
                mixture is not null && dataOverride is null ? null : spec, tm.Config.Data.DataDir);
        }
        catch
        {
            tm.Dispose();
            throw;
        }
    }

    /// <summary>The exact denoiser of a Gaussian mixture spec (held-out data: fresh draws from the mixture).</summary>
    public static DiagnosticModel FromMixture(string specPath, string? label = null)
    {
        var (gmm, sc) = GaussianMixture.Load(specPath);
        var schedule = sc.Build();
        return new DiagnosticModel(label ?? $"exact {Path.GetFileNameWithoutExtension(specPath)}", new GaussianMixtureDenoiser(gmm, schedule),
            schedule, [gmm.Dim], gmm, "fresh draws from the mixture", null, null, null);
    }

    /// <summary>A model given directly (tests, library users).</summary>
    public static DiagnosticModel FromDenoiser(string label, IDenoiser denoiser, NoiseSchedule schedule, GaussianMixture mixture) =>
        new(label, denoiser, schedule, [mixture.Dim], mixture, "fresh draws from the mixture", null, null, null);

    /// <summary>
    /// A model of images given directly (tests, library users): its held-out examples come from the data spec
    /// <paramref name="heldOutSpec"/> (e.g. <c>npy:FILE</c>), whose examples must have <paramref name="exampleShape"/> [C, H, W].
    /// </summary>
    public static DiagnosticModel FromImageDenoiser(string label, IDenoiser denoiser, NoiseSchedule schedule, long[] exampleShape, string heldOutSpec, string? dataDir = null)
    {
        if (exampleShape.Length != 3) throw new ArgumentException($"expected an image shape [C, H, W], got [{string.Join(", ", exampleShape)}]", nameof(exampleShape));
        return new(label, denoiser, schedule, exampleShape, null, heldOutSpec, null, heldOutSpec, dataDir);
    }

    /// <summary>
    /// At most <paramref name="max"/> examples of the held-out data spec, as <c>diffusion eval</c> takes a reference from a
    /// data spec (<see cref="Metrics.SampleSet.Subset"/>: all of them, or a random subset drawn with <paramref name="seed"/>);
    /// the caller owns the result. Only for a held-out data spec (not fresh draws from a known mixture).
    /// </summary>
    public Dataset HeldOutReference(int max, long seed)
    {
        if (dataSpec is null) throw new UserError($"{Label}: the held-out examples are fresh draws from a known mixture, not a data spec");
        return Metrics.SampleSet.Subset(LoadHeldOut(), max, seed);
    }

    /// <summary>All examples of the held-out data spec (the caller owns them), refused unless they have the model's shape.</summary>
    private Dataset LoadHeldOut()
    {
        var all = DataSources.Load(new DataConfig { Spec = dataSpec!, DataDir = dataDir, ImageSize = IsImage ? (int)ExampleShape[1] : 32 });
        if (all.ExampleShape.SequenceEqual(ExampleShape)) return all;
        var shape = all.ExampleShape;
        all.Dispose();
        throw new UserError($"{dataSpec}: examples of shape [{string.Join(", ", shape)}], the model's are [{string.Join(", ", ExampleShape)}]");
    }

    /// <summary>
    /// n held-out examples (float32, [n, …]): fresh draws from the mixture when it is known, otherwise
    /// examples of the held-out data spec (the test split for fashion-mnist, another seed for toy sets),
    /// a random subset drawn with <paramref name="gen"/>.
    /// </summary>
    public Tensor HeldOut(int n, Generator gen)
    {
        if (Mixture is not null && dataSpec is null)
        {
            using var x = Mixture.Sample(n, gen);
            return x.to_type(ScalarType.Float32);
        }
        heldOut ??= LoadHeldOut();
        using var idx = heldOut.Count >= n ? randperm(heldOut.Count, generator: gen).narrow(0, 0, n) : randint(heldOut.Count, [n], generator: gen);
        return heldOut.Data.index_select(0, idx);
    }

    /// <summary>The held-out counterpart of a training data spec: fashion-mnist → fashion-mnist:test; toy sets and gmm: with another seed.</summary>
    public static string HeldOutSpec(string trainSpec) => DataKinds.HeldOutSpec(trainSpec);

    private static GaussianMixture? MixtureOf(string spec)
    {
        var (kind, arg) = DataSources.Split(spec);
        if (kind is not ("gmm" or "toy")) return null;
        string name = DataSources.Options(arg).Name;
        if (kind == "gmm") return GaussianMixture.Load(name).Mixture;
        if (kind == "toy" && name == "gmm-grid")
        {
            using var ds = DataSources.Load(new DataConfig { Spec = spec.Contains('?') ? spec + "&n=1" : spec + "?n=1" });
            return ds.Mixture;
        }
        return null;
    }

    private static string DefaultLabel(string path)
    {
        string full = Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar);
        return Directory.Exists(full) ? Path.GetFileName(full) : Path.GetFileName(Path.GetDirectoryName(full)) ?? Path.GetFileName(full);
    }

    public void Dispose()
    {
        Denoiser.Dispose();
        trained?.Dispose();
        heldOut?.Dispose();
    }
}
