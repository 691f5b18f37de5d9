using System.Text.Json;
using System.Text.Json.Nodes;
using Diffusion.Data;
using Diffusion.Models;
using static TorchSharp.torch;

namespace Diffusion.Metrics;

/// <summary>
/// What sample-quality metrics compare against: the reference's features in one feature space, their
/// Gaussian statistics, and (for mixture data) the true mixture. Computed once from a data spec and
/// saved as an .npz: <c>mu</c> and <c>sigma</c> (float64, the names pytorch-fid uses, so its
/// precomputed statistics load too, for FID only), <c>features</c> (float32 rows, needed by KID,
/// precision/recall and MMD), <c>mixture_weights/means/stds</c> when the mixture is known, and
/// <c>meta.json</c> (extractor name, source spec, example shape).
/// </summary>
public sealed class ReferenceSet : IDisposable
{
    /// <summary>The feature extractor's name; null for a foreign statistics file that does not say.</summary>
    public string? Features { get; }
    /// <summary>Where the reference came from (a data spec, or the statistics file).</summary>
    public string Source { get; }
    public FeatureStatistics Statistics { get; }
    /// <summary>Feature rows [N, F] (float32); null when only statistics are known.</summary>
    public Tensor? Rows { get; }
    public GaussianMixture? Mixture { get; }
    /// <summary>Shape of one example of the reference data, when known.</summary>
    public long[]? ExampleShape { get; }

    public long Count => Rows?.shape[0] ?? Statistics.Count;

    public ReferenceSet(string? features, string source, Tensor? rows, FeatureStatistics statistics, GaussianMixture? mixture, long[]? exampleShape)
    {
        Features = features;
        Source = source;
        Rows = rows?.to_type(ScalarType.Float32).contiguous().clone().DetachFromDisposeScope();
        Statistics = statistics;
        Mixture = mixture;
        ExampleShape = exampleShape;
    }

    /// <summary>A reference from feature rows (statistics computed here).</summary>
    public static ReferenceSet FromFeatures(string features, string source, Tensor rows, GaussianMixture? mixture, long[]? exampleShape) =>
        new(features, source, rows, FeatureStatistics.FromFeatures(rows), mixture, exampleShape);

    public void Save(string path)
    {
        var arrays = new List<(string, Tensor)> { ("mu", Statistics.Mean), ("sigma", Statistics.Covariance) };
        var extra = new List<Tensor>();
        if (Rows is not null) arrays.Add(("features", Rows));
        if (Mixture is not null)
        {
            var w = tensor(Mixture.Weights, dtype: ScalarType.Float64);
            var m = tensor(Mixture.Means.SelectMany(r => r).ToArray(), dtype: ScalarType.Float64).reshape(Mixture.Components, Mixture.Dim);
            var s = tensor(Mixture.Stds, dtype: ScalarType.Float64);
            extra.AddRange([w, m, s]);
            arrays.AddRange([("mixture_weights", w), ("mixture_means", m), ("mixture_stds", s)]);
        }
        var meta = new JsonObject
        {
            ["features"] = Features,
            ["source"] = Source,
            ["n"] = Count,
            ["example_shape"] = ExampleShape is null ? null : new JsonArray(ExampleShape.Select(v => (JsonNode)v).ToArray()),
            ["created_utc"] = DateTime.UtcNow.ToString("o"),
        };
        Npz.Write(path, arrays, [("meta.json", System.Text.Encoding.UTF8.GetBytes(meta.ToJsonString()))]);
        foreach (var t in extra) t.Dispose();
    }

    public static ReferenceSet Load(string path)
    {
        var (arrays, other) = Npz.ReadAll(path);
        try
        {
            if (!arrays.TryGetValue("mu", out var mu) || !arrays.TryGetValue("sigma", out var sigma))
                throw new UserError($"{path}: expected reference statistics with arrays 'mu' and 'sigma' (saved by diffusion eval --save-reference, or pytorch-fid's .npz)");
            JsonObject? meta = null;
            if (other.TryGetValue("meta.json", out var mj))
            {
                try { meta = JsonNode.Parse(mj) as JsonObject; }
                catch (JsonException e) { throw new UserError($"{path}: unreadable meta.json ({e.Message.ReplaceLineEndings(" ")})"); }
            }
            arrays.TryGetValue("features", out var rows);
            if (rows is not null && (rows.dim() != 2 || rows.shape[1] != mu.shape[0]))
                throw new UserError($"{path}: 'features' has shape [{string.Join(", ", rows.shape)}], expected [N, {mu.shape[0]}]");
            GaussianMixture? mixture = null;
            if (arrays.TryGetValue("mixture_weights", out var w) && arrays.TryGetValue("mixture_means", out var m) && arrays.TryGetValue("mixture_stds", out var s))
            {
                var means = Enumerable.Range(0, (int)m.shape[0]).Select(i => Values(m[i])).ToArray();
                mixture = new GaussianMixture(Values(w), means, Values(s));
            }
            long[]? shape = meta?["example_shape"] is JsonArray a ? a.Select(v => v!.GetValue<long>()).ToArray() : null;
            long n = meta?["n"]?.GetValue<long>() ?? rows?.shape[0] ?? 0;
            var stats = new FeatureStatistics(mu, sigma, n);
            return new ReferenceSet(meta?["features"]?.GetValue<string>(), path, rows, stats, mixture, shape);
        }
        catch (UserError e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            throw new UserError($"{path}: {e.Message}");
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new UserError($"{path}: unreadable meta.json ({e.Message.ReplaceLineEndings(" ")})");
        }
        finally
        {
            foreach (var t in arrays.Values) t.Dispose();
        }
    }

    private static double[] Values(Tensor t) => t.to_type(ScalarType.Float64).contiguous().data<double>().ToArray();

    public void Dispose()
    {
        Statistics.Dispose();
        Rows?.Dispose();
    }
}
