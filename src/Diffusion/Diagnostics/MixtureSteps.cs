using System.Text.Json.Nodes;
using Diffusion.IO;
using Diffusion.Metrics;
using Diffusion.Metrics.Features;
using static TorchSharp.torch;

namespace Diffusion.Diagnostics;

/// <summary>
/// The Gaussian bottleneck with few backward steps (METHODS.md §5): N samples of each model drawn from
/// the same x_T with each number of backward steps (default 1000, 100, 20, 10, 5, uniform respacing;
/// those above T are left out), and scored.
/// <para>Vector data from a known Gaussian mixture (<see cref="Run"/>): the mixture scores — fraction of
/// samples within 3σ of a mode, modes covered, mean log-likelihood under the true mixture.</para>
/// <para>Images (<see cref="RunImages"/>): the scores <c>diffusion eval</c> gives — FID, KID and
/// precision/recall, computed by <see cref="Evaluation.Run"/> in the feature space eval uses by default
/// for the held-out data (the project's classifier for Fashion-MNIST and MNIST, Inception for other
/// images) — against the held-out images (the test split; <c>--data</c> overrides), whose features an
/// <see cref="ImageReference"/> computes once for all models and step counts.</para>
/// </summary>
public static class MixtureSteps
{
    public static readonly int[] DefaultSteps = [1000, 100, 20, 10, 5];

    public sealed record Row(int Steps, MixtureScores Scores);

    public sealed record Result(string Label, IReadOnlyList<Row> Rows);

    /// <summary>The eval scores of the N image samples drawn with <see cref="Steps"/> backward steps.</summary>
    public sealed record ImageRow(int Steps, EvalResult Scores)
    {
        public double Fid => Scores.Value("fid") ?? double.NaN;
        public double Kid => Scores.Value("kid") ?? double.NaN;
        public double KidStd => Scores.Value("kid_std") ?? double.NaN;
        public double Precision => Scores.Value("precision") ?? double.NaN;
        public double Recall => Scores.Value("recall") ?? double.NaN;
    }

    public sealed record ImageResult(string Label, IReadOnlyList<ImageRow> Rows);

    /// <summary>The metrics of the image case, as <c>diffusion eval --metrics</c> names them (MMD² left out: its kernel matrix is (2N)²).</summary>
    public static readonly string[] ImageMetrics = ["fid", "kid", "pr"];

    /// <summary>At most this many held-out images form the reference (a random subset beyond): eval's <c>--reference-n</c> default.</summary>
    public const int ReferenceMax = 10000;

    /// <summary>
    /// What image samples are scored against, computed once per diagnose run and shared by every model and step
    /// count: the feature extractor, the features of the held-out images (<see cref="ReferenceSet"/>) and eval's options.
    /// </summary>
    public sealed class ImageReference : IDisposable
    {
        public string Features { get; }
        /// <summary>The held-out data spec the reference was drawn from.</summary>
        public string Source { get; }
        public long[] ExampleShape { get; }
        public IFeatureExtractor Extractor { get; }
        public ReferenceSet Set { get; }
        public EvalOptions Options { get; }

        private ImageReference(string features, string source, long[] shape, IFeatureExtractor extractor, ReferenceSet set, EvalOptions options)
        {
            Features = features;
            Source = source;
            ExampleShape = shape;
            Extractor = extractor;
            Set = set;
            Options = options;
        }

        /// <summary>
        /// The reference of an image model's held-out data spec: at most <see cref="ReferenceMax"/> of its examples (a random
        /// subset drawn with the seed, as eval draws it), in <paramref name="features"/> (default: eval's default for the spec).
        /// </summary>
        public static ImageReference For(DiagnosticModel m, DiagnosticSettings s, string? features = null, FeatureSettings? featureSettings = null)
        {
            if (!m.IsImage) throw new UserError($"mixture-steps: {m.Label}: expected an image model");
            string spec = m.HeldOutDataSpec ?? throw new UserError($"mixture-steps: {m.Label}: no held-out data spec");
            string name = features ?? FeatureExtractors.DefaultFor(spec, isImage: true);
            var fs = featureSettings ?? new FeatureSettings { DataDir = m.DataDir, BatchSize = s.BatchSize };
            var extractor = FeatureExtractors.Create(name, fs);
            try
            {
                using var data = m.HeldOutReference(ReferenceMax, s.Seed);
                using var rows = extractor.Extract(data.Data);
                var set = ReferenceSet.FromFeatures(name, spec, rows, null, data.ExampleShape);
                return new ImageReference(name, spec, data.ExampleShape, extractor, set, new EvalOptions { Metrics = ImageMetrics, Seed = s.Seed });
            }
            catch
            {
                extractor.Dispose();
                throw;
            }
        }

        public void Dispose()
        {
            Set.Dispose();
            Extractor.Dispose();
        }
    }

    /// <summary>The step counts to run: those ≤ T, without repeats, largest first.</summary>
    private static int[] Counts(DiagnosticModel m, IReadOnlyList<int>? steps)
    {
        var counts = (steps ?? DefaultSteps).Where(k => k <= m.Schedule.T).Distinct().OrderDescending().ToArray();
        if (counts.Length == 0) throw new UserError($"mixture-steps: no step count ≤ T = {m.Schedule.T}");
        return counts;
    }

    /// <summary>
    /// Draws the N samples of each step count from one x_T ~ N(0, I) (generator seeded with the seed) and hands each set to
    /// <paramref name="score"/>; the chain's own noise comes from a generator seeded with seed + 1, fresh for each count.
    /// </summary>
    private static List<TRow> Draw<TRow>(DiagnosticModel m, DiagnosticSettings s, int[] counts, Func<int, Tensor, TRow> score)
    {
        using var gen = new Generator((ulong)s.Seed);
        using var xT = randn(new long[] { s.N }.Concat(m.ExampleShape).ToArray(), generator: gen);
        var rows = new List<TRow>();
        foreach (int k in counts)
        {
            using var scope = NewDisposeScope();
            using var g = new Generator((ulong)s.Seed + 1);
            var x = Sampling.SampleRun.Draw(DiagnosticReport.Chain(m, s, k), m.Denoiser, xT, g, s.BatchSize);
            rows.Add(score(k, x));
        }
        return rows;
    }

    /// <summary>
    /// The image case: for each step count, the eval scores (<see cref="ImageMetrics"/>) of the model's N samples against
    /// the shared <paramref name="reference"/>, which must be of the model's held-out data.
    /// </summary>
    public static ImageResult RunImages(DiagnosticModel m, DiagnosticSettings s, ImageReference reference, IReadOnlyList<int>? steps = null)
    {
        if (!m.IsImage) throw new UserError($"mixture-steps: {m.Label}: expected an image model (vector data is scored against its known mixture)");
        if (m.HeldOutDataSpec != reference.Source || !m.ExampleShape.SequenceEqual(reference.ExampleShape))
            throw new UserError($"mixture-steps: {m.Label}: its held-out data is {m.HeldOutDataSpec} ([{string.Join(", ", m.ExampleShape)}]), the reference's {reference.Source} ([{string.Join(", ", reference.ExampleShape)}]); give all models the same --data");
        var rows = Draw(m, s, Counts(m, steps), (k, x) =>
        {
            using var features = reference.Extractor.Extract(x);
            return new ImageRow(k, Evaluation.Run(reference.Features, features, reference.Set, reference.Options));
        });
        return new ImageResult(m.Label, rows);
    }

    public static Result Run(DiagnosticModel m, DiagnosticSettings s, IReadOnlyList<int>? steps = null)
    {
        if (m.IsImage) throw new UserError($"mixture-steps: {m.Label}: an image model; score it against held-out images with RunImages");
        var mixture = m.Mixture ?? throw new UserError($"mixture-steps: {m.Label}: the data is not a known Gaussian mixture (expected a model of toy:gmm-grid or gmm:SPEC.json data, or --model gmm:SPEC.json)");
        return new Result(m.Label, Draw(m, s, Counts(m, steps), (k, x) => new Row(k, MixtureMetrics.Score(mixture, x))));
    }

    public static void Write(string dir, IReadOnlyList<Result> results, DiagnosticSettings s)
    {
        Directory.CreateDirectory(dir);
        DiagnosticReport.WriteCsv(Path.Combine(dir, "mixture-steps.csv"), ["label", "steps", "within_3sigma", "modes_covered", "modes", "log_likelihood"],
            results.SelectMany(r => r.Rows.Select(w => new object[] { r.Label, w.Steps, w.Scores.FractionWithin3Sigma, w.Scores.ModesCovered, w.Scores.Modes, w.Scores.MeanLogLikelihood })));
        var json = DiagnosticReport.Document("mixture-steps", "mixture scores of N samples drawn with each number of backward steps (uniform respacing) from the same x_T", DiagnosticReport.Json(s), results.Select(r => new JsonObject
        {
            ["label"] = r.Label,
            ["steps"] = DiagnosticReport.Array(r.Rows.Select(w => w.Steps)),
            ["within_3sigma"] = DiagnosticReport.Array(r.Rows.Select(w => w.Scores.FractionWithin3Sigma)),
            ["modes_covered"] = DiagnosticReport.Array(r.Rows.Select(w => w.Scores.ModesCovered)),
            ["modes"] = r.Rows[0].Scores.Modes,
            ["log_likelihood"] = DiagnosticReport.Array(r.Rows.Select(w => w.Scores.MeanLogLikelihood)),
        }));
        DiagnosticReport.WriteJson(Path.Combine(dir, "mixture-steps.json"), json);
        double[] X(Result r) => r.Rows.Select(w => (double)w.Steps).ToArray();
        DiagnosticReport.WritePlot(Path.Combine(dir, "mixture-steps.png"),
        [
            new LinePanel("samples within 3σ of a mode", "backward steps", "fraction",
                results.Select(r => new Curve(r.Label, X(r), r.Rows.Select(w => w.Scores.FractionWithin3Sigma).ToArray())).ToList(), LogX: true),
            new LinePanel("modes covered", "backward steps", $"modes (of {results[0].Rows[0].Scores.Modes})",
                results.Select(r => new Curve(r.Label, X(r), r.Rows.Select(w => (double)w.Scores.ModesCovered).ToArray())).ToList(), LogX: true),
            new LinePanel("log-likelihood under the true mixture", "backward steps", "mean log p(x)",
                results.Select(r => new Curve(r.Label, X(r), r.Rows.Select(w => w.Scores.MeanLogLikelihood).ToArray())).ToList(), LogX: true),
        ]);
    }

    /// <summary>The image case's mixture-steps.csv, .json and .png (FID, KID and precision/recall against the steps, log x).</summary>
    public static void WriteImages(string dir, IReadOnlyList<ImageResult> results, DiagnosticSettings s, ImageReference reference)
    {
        Directory.CreateDirectory(dir);
        DiagnosticReport.WriteCsv(Path.Combine(dir, "mixture-steps.csv"), ["label", "steps", "fid", "kid", "kid_std", "precision", "recall", "features", "n", "reference_n"],
            results.SelectMany(r => r.Rows.Select(w => new object[] { r.Label, w.Steps, w.Fid, w.Kid, w.KidStd, w.Precision, w.Recall, reference.Features, w.Scores.N, w.Scores.ReferenceN })));
        var settings = DiagnosticReport.Json(s);
        settings["features"] = reference.Features;
        settings["reference"] = reference.Source;
        settings["reference_n"] = reference.Set.Count;
        var json = DiagnosticReport.Document("mixture-steps",
            "FID, KID and precision/recall (as diffusion eval computes them) of N image samples drawn with each number of backward steps (uniform respacing) from the same x_T, against held-out images",
            settings, results.Select(r => new JsonObject
            {
                ["label"] = r.Label,
                ["steps"] = DiagnosticReport.Array(r.Rows.Select(w => w.Steps)),
                ["fid"] = DiagnosticReport.Array(r.Rows.Select(w => w.Fid)),
                ["kid"] = DiagnosticReport.Array(r.Rows.Select(w => w.Kid)),
                ["kid_std"] = DiagnosticReport.Array(r.Rows.Select(w => w.KidStd)),
                ["precision"] = DiagnosticReport.Array(r.Rows.Select(w => w.Precision)),
                ["recall"] = DiagnosticReport.Array(r.Rows.Select(w => w.Recall)),
            }));
        DiagnosticReport.WriteJson(Path.Combine(dir, "mixture-steps.json"), json);
        double[] X(ImageResult r) => r.Rows.Select(w => (double)w.Steps).ToArray();
        string tag = $"{reference.Features}, n={s.N} vs {reference.Set.Count}";
        DiagnosticReport.WritePlot(Path.Combine(dir, "mixture-steps.png"),
        [
            new LinePanel($"FID ({tag})", "backward steps", "FID",
                results.Select(r => new Curve(r.Label, X(r), r.Rows.Select(w => w.Fid).ToArray())).ToList(), LogX: true),
            new LinePanel($"KID ({tag})", "backward steps", "KID (± std over subsets)",
                results.Select(r => new Curve(r.Label, X(r), r.Rows.Select(w => w.Kid).ToArray(), r.Rows.Select(w => w.KidStd).ToArray())).ToList(), LogX: true),
            new LinePanel("precision and recall", "backward steps", "fraction",
                results.SelectMany(r => new[]
                {
                    new Curve($"{r.Label} precision", X(r), r.Rows.Select(w => w.Precision).ToArray()),
                    new Curve($"{r.Label} recall", X(r), r.Rows.Select(w => w.Recall).ToArray()),
                }).ToList(), LogX: true),
        ]);
    }
}
