using System.Text.Json;
using System.Text.Json.Nodes;
using Diffusion.Config;
using Diffusion.Models;
using static TorchSharp.torch;

namespace Diffusion.Sampling;

/// <summary>
/// The library side of a sampling run: the sample config a request resolves to, and drawing samples in batches.
/// The command line only parses flags into <c>sample.KEY=value</c> assignments, calls these and prints.
/// </summary>
public static class SampleRun
{
    /// <summary>
    /// The sample config of a run: <paramref name="saved"/> (a checkpoint's sample config; null for the exact model,
    /// whose base is DDIM) with every assignment applied — each field follows the checkpoint unless it is given.
    /// The number of steps, when not given, is the checkpoint's own for its own sampler, else the sampler's default
    /// (<see cref="SamplerKind.DefaultSteps"/>). Validated once; problems are <see cref="ConfigException"/>s naming
    /// <c>sample.KEY</c>.
    /// </summary>
    public static SampleConfig Resolve(SampleConfig? saved, IReadOnlyList<KeyValuePair<string, string>> assignments, int T)
    {
        var baseConfig = saved ?? new SampleConfig { Sampler = "ddim" };
        var tree = JsonSerializer.SerializeToNode(baseConfig, ConfigLoader.JsonOptions)!.AsObject();
        foreach (var (key, value) in assignments) ConfigLoader.ApplySet(tree, $"{key}={value}");
        // A saved option of another sampler (e.g. sample.rho of heun) does not follow the run to the sampler asked for.
        if (tree["sampler"]?.GetValue<string>() is string chosen && saved is not null && chosen != saved.Sampler
            && Samplers.All.FirstOrDefault(k => k.Name == chosen) is { } chosenKind)
            foreach (var extra in saved.Options?.Keys ?? Enumerable.Empty<string>())
                if (!chosenKind.Options.Any(o => o.Key == extra) && !assignments.Any(a => a.Key == extra)) tree.Remove(extra);
        SampleConfig cfg;
        try { cfg = tree.Deserialize<SampleConfig>(ConfigLoader.JsonOptions)!; }
        catch (JsonException e) { throw new ConfigException($"sample.{(e.Path ?? "$").TrimStart('$', '.')}: wrong type of value"); }
        if (!assignments.Any(a => a.Key == "steps"))
        {
            var kind = Samplers.Get(cfg.Sampler);
            cfg.Steps = saved is not null && cfg.Sampler == saved.Sampler ? Math.Min(saved.Steps, T) : kind.DefaultSteps(T);
        }
        cfg.Validate();
        return cfg;
    }

    /// <summary>
    /// The class of each of <paramref name="n"/> samples of a model with <paramref name="classes"/> classes, as
    /// <c>--class</c> asks: a class number or name (every sample), <c>all</c> (every class in turn, n/K samples each, in
    /// blocks: row k of a grid of K rows is class k; n must be a multiple of K), <c>random</c> (uniform, drawn with a
    /// generator of its own seeded by <paramref name="seed"/>, so x_T does not depend on it) or <c>none</c> (the null
    /// class K: the unconditional model). A bad request is one <see cref="UserError"/> naming it.
    /// </summary>
    public static long[] ClassLabels(string request, int n, int classes, IReadOnlyList<string>? names, long seed)
    {
        if (classes < 1) throw new UserError($"--class {request}: the model is not class-conditional (model.num-classes = 0)");
        string range = $"0 … {classes - 1}{(names is null ? "" : $" or a name ({string.Join(", ", names)})")}";
        switch (request)
        {
            case "all":
                if (n % classes != 0) throw new UserError($"--class all: {n} samples are not a multiple of the {classes} classes; use --n {Math.Max(1, n / classes) * classes}");
                return Enumerable.Range(0, n).Select(i => (long)(i / (n / classes))).ToArray();
            case "random":
            {
                using var g = new Generator((ulong)unchecked(seed * 7919 + 101));
                using var r = randint(0, classes, [n], dtype: ScalarType.Int64, generator: g);
                return r.data<long>().ToArray();
            }
            case "none":
                return Enumerable.Repeat((long)classes, n).ToArray();
        }
        int k = names?.ToList().IndexOf(request) ?? -1;
        if (k < 0 && int.TryParse(request, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var num)) k = num;
        else if (k < 0) throw new UserError($"--class {request}: expected a class {range}, all, random or none");
        if (k < 0 || k >= classes) throw new UserError($"--class {request}: the model has {classes} classes; expected {range}, all, random or none");
        return Enumerable.Repeat((long)k, n).ToArray();
    }

    /// <summary>Where the labels of samples saved as FILE.npy go: FILE.labels.npy (a 1-D int64 array, one class per row).</summary>
    public static string LabelsPath(string samplesPath) => Path.Combine(Path.GetDirectoryName(samplesPath) ?? "", Path.GetFileNameWithoutExtension(samplesPath) + ".labels.npy");

    /// <summary>
    /// Runs <paramref name="sampler"/> over x_T in batches of <paramref name="batch"/> rows without gradients and
    /// concatenates the results; <paramref name="progress"/> counts evaluations over all batches. With
    /// <paramref name="labels"/> (one class per row of x_T) the denoiser must be a <see cref="GuidedDenoiser"/>, told
    /// each batch's labels.
    /// </summary>
    public static Tensor Draw(ISampler sampler, IDenoiser denoiser, Tensor xT, NoiseSource? gen, int batch, SamplerProgress? progress = null, Tensor? labels = null)
    {
        var guided = denoiser as GuidedDenoiser;
        if (labels is not null && guided is null) throw new InvalidOperationException("SampleRun.Draw: labels need a GuidedDenoiser (DenoiserStack.Guided)");
        if (labels is not null && labels.shape[0] != xT.shape[0]) throw new InvalidOperationException($"SampleRun.Draw: {labels.shape[0]} labels for {xT.shape[0]} samples");
        long total = xT.shape[0];
        int chunks = (int)((total + batch - 1) / batch);
        var parts = new List<Tensor>();
        try
        {
            using (no_grad())
            {
                for (int c = 0; c < chunks; c++)
                {
                    using var x = xT.narrow(0, (long)c * batch, Math.Min(batch, total - (long)c * batch));
                    using var l = labels?.narrow(0, (long)c * batch, x.shape[0]);
                    if (guided is not null) guided.Labels = l;
                    int cc = c;
                    parts.Add(sampler.Sample(denoiser, x, gen, progress is null ? null : (d, t) => progress(cc * t + d, chunks * t)));
                    if (guided is not null) guided.Labels = null;
                }
            }
            return cat(parts, 0);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    /// <summary>
    /// Split-invariant drawing: samples <paramref name="indices"/> of a run whose randomness is <paramref name="noise"/>
    /// (per sample: <see cref="NoiseSource.PerSample"/>; the same source the denoiser draws SMD's η from). Row r of the
    /// result is sample indices[r]: its x_T is the first draw of its own generator (or row r of <paramref name="initNoise"/>
    /// when given) and every later draw of its chain comes from that generator too, so the rows do not depend on the
    /// batch size, on which other indices are drawn, or on the process. <paramref name="dtype"/> is x_T's (float32 or
    /// float64; ignored with <paramref name="initNoise"/>, which keeps its own).
    /// </summary>
    public static Tensor DrawIndexed(ISampler sampler, IDenoiser denoiser, NoiseSource noise, IReadOnlyList<long> indices, long[] exampleShape,
                                     ScalarType dtype, int batch, Tensor? initNoise = null, SamplerProgress? progress = null, Tensor? labels = null)
    {
        var guided = denoiser as GuidedDenoiser;
        if (labels is not null && guided is null) throw new InvalidOperationException("SampleRun.DrawIndexed: labels need a GuidedDenoiser (DenoiserStack.Guided)");
        if (labels is not null && labels.shape[0] != indices.Count) throw new InvalidOperationException($"SampleRun.DrawIndexed: {labels.shape[0]} labels for {indices.Count} samples");
        if (!noise.IsPerSample) throw new ArgumentException("DrawIndexed needs a per-sample noise source", nameof(noise));
        if (batch < 1) throw new ArgumentOutOfRangeException(nameof(batch), $"batch must be at least 1, got {batch}");
        if (initNoise is not null && initNoise.shape[0] != indices.Count)
            throw new ArgumentException($"initNoise has {initNoise.shape[0]} rows for {indices.Count} indices", nameof(initNoise));
        int total = indices.Count;
        int chunks = (total + batch - 1) / batch;
        var parts = new List<Tensor>();
        try
        {
            using (no_grad())
            {
                for (int c = 0; c < chunks; c++)
                {
                    int start = c * batch, count = Math.Min(batch, total - start);
                    noise.Use(indices.Skip(start).Take(count).ToArray());
                    using var xT = initNoise is not null ? initNoise.narrow(0, start, count)
                                                         : noise.Randn(new long[] { count }.Concat(exampleShape).ToArray(), dtype, CPU);
                    using var l = labels?.narrow(0, start, count);
                    if (guided is not null) guided.Labels = l;
                    int cc = c;
                    parts.Add(sampler.Sample(denoiser, xT, noise, progress is null ? null : (d, t) => progress(cc * t + d, chunks * t)));
                    if (guided is not null) guided.Labels = null;
                }
            }
            return parts.Count == 0 ? zeros(new long[] { 0 }.Concat(exampleShape).ToArray(), dtype: dtype) : cat(parts, 0);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }
}
