using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using Diffusion.Data;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Metrics;

/// <summary>What a partial evaluation belongs to and which sample rows it holds.</summary>
public sealed record PartialManifest
{
    public const string CurrentFormat = "diffusion-eval-partial/1";

    public string Format { get; init; } = CurrentFormat;
    /// <summary>The feature extractor's name ("classifier:fashion-mnist", …).</summary>
    public string Features { get; init; } = "";
    /// <summary>The extractor's identity: its name and the SHA-256 of its weights (<see cref="Features.IFeatureExtractor.Identity"/>).</summary>
    public string FeatureIdentity { get; init; } = "";
    /// <summary>The reference as given, and the SHA-256 of its statistics and feature rows (<see cref="EvalPartials.ReferenceIdentity"/>).</summary>
    public string Reference { get; init; } = "";
    public string ReferenceIdentity { get; init; } = "";
    /// <summary>The samples as given (informative).</summary>
    public string Samples { get; init; } = "";
    public long N { get; init; }
    public int Shards { get; init; } = 1;
    public int Shard { get; init; }
    public long Start { get; init; }
    public long Count { get; init; }
}

/// <summary>
/// Partial evaluations (<c>diffusion eval --shard k/S --save-partial FILE</c>) and their merge. A partial is an .npz
/// with the shard's feature rows (<c>features</c>, float32 [count, F]: KID, precision/recall and MMD need the rows),
/// their float64 sum (<c>sum</c> [F]) and sum of outer products (<c>outer</c> [F, F]), the raw sample vectors when the
/// samples are vectors (<c>raw</c>, for the mixture scores) and <c>partial.json</c> (<see cref="PartialManifest"/>).
/// Merged, the sums give the mean and covariance of all N rows, μ = Σx/N and Σ = (Σxxᵀ − N·μμᵀ)/(N − 1); the rows,
/// joined in index order, are those one process would have, so every score equals the single-process score to rounding.
/// </summary>
public static class EvalPartials
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    /// <summary>SHA-256 over the reference's extractor name, μ, Σ and feature rows: two references are the same only if all agree.</summary>
    public static string ReferenceIdentity(ReferenceSet r)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData(System.Text.Encoding.UTF8.GetBytes((r.Features ?? "?") + "\n"));
        Append(h, r.Statistics.Mean);
        Append(h, r.Statistics.Covariance);
        if (r.Rows is not null) Append(h, r.Rows);
        return "sha256:" + Convert.ToHexStringLower(h.GetHashAndReset());
    }

    /// <summary>Adds a tensor's shape, dtype and bytes to a hash.</summary>
    public static void Append(IncrementalHash h, Tensor t)
    {
        using var c = t.detach().cpu().contiguous();
        h.AppendData(System.Text.Encoding.UTF8.GetBytes($"{c.dtype}[{string.Join(",", c.shape)}]"));
        switch (c.dtype)
        {
            case ScalarType.Float64: h.AppendData(MemoryMarshal.AsBytes(c.data<double>().ToArray().AsSpan())); break;
            case ScalarType.Float32: h.AppendData(MemoryMarshal.AsBytes(c.data<float>().ToArray().AsSpan())); break;
            default:
                using (var f = c.to_type(ScalarType.Float64)) h.AppendData(MemoryMarshal.AsBytes(f.data<double>().ToArray().AsSpan()));
                break;
        }
    }

    public static void Write(string path, Tensor features, Tensor? raw, PartialManifest m)
    {
        if (features.dim() != 2 || features.shape[0] != m.Count) throw new ArgumentException($"features [{string.Join(", ", features.shape)}] for {m.Count} rows");
        using var scope = NewDisposeScope();
        var x = features.detach().cpu().to_type(ScalarType.Float64);
        var sum = x.sum([0]);
        var outer = x.t().matmul(x);
        var arrays = new List<(string, Tensor)> { ("features", features.to_type(ScalarType.Float32)), ("sum", sum), ("outer", outer) };
        if (raw is not null) arrays.Add(("raw", raw));
        Npz.Write(path, arrays, [("partial.json", JsonSerializer.SerializeToUtf8Bytes(m, Json))]);
    }

    /// <summary>One partial; anything else is a one-line <see cref="UserError"/> naming the file.</summary>
    public static (Dictionary<string, Tensor> Arrays, PartialManifest Manifest) Read(string path)
    {
        var (arrays, other) = Npz.ReadAll(path);
        try
        {
            if (!other.TryGetValue("partial.json", out var bytes) || !arrays.ContainsKey("features") || !arrays.ContainsKey("sum") || !arrays.ContainsKey("outer"))
                throw new UserError($"{path}: not a partial evaluation (expected an .npz with features, sum, outer and partial.json, as eval --save-partial writes)");
            PartialManifest m;
            try { m = JsonSerializer.Deserialize<PartialManifest>(bytes, Json) ?? throw new JsonException("empty"); }
            catch (JsonException e) { throw new UserError($"{path}: partial.json is not a readable manifest ({e.Message.ReplaceLineEndings(" ")})"); }
            if (m.Format != PartialManifest.CurrentFormat) throw new UserError($"{path}: partial format '{m.Format}'; expected {PartialManifest.CurrentFormat}");
            long f = arrays["features"].dim() == 2 ? arrays["features"].shape[1] : -1;
            if (arrays["features"].dim() != 2 || arrays["features"].shape[0] != m.Count || !arrays["sum"].shape.SequenceEqual([f]) || !arrays["outer"].shape.SequenceEqual([f, f]))
                throw new UserError($"{path}: features, sum and outer do not agree with each other or with the manifest's {m.Count} rows");
            if (m.Start < 0 || m.Count < 0 || m.Start + m.Count > m.N) throw new UserError($"{path}: rows {m.Start}…{m.Start + m.Count - 1} do not fit N = {m.N}");
            return (arrays, m);
        }
        catch
        {
            foreach (var t in arrays.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Joins partials in row order: the feature rows, the raw samples (when every part has them) and the statistics
    /// from the merged sums. Refuses, naming the file, partials of another extractor or reference than
    /// <paramref name="featureIdentity"/> / <paramref name="referenceIdentity"/>, of another N, overlapping rows and missing rows.
    /// </summary>
    public static (Tensor Features, Tensor? Raw, FeatureStatistics Statistics, PartialManifest First) Merge(IReadOnlyList<string> paths, string featureIdentity, string referenceIdentity)
    {
        if (paths.Count == 0) throw new UserError("--merge: no partials given; expected files written by eval --save-partial");
        var parts = new List<(string Path, Dictionary<string, Tensor> A, PartialManifest M)>();
        try
        {
            foreach (var p in paths)
            {
                var (a, m) = Read(p);
                parts.Add((p, a, m));
                if (m.FeatureIdentity != featureIdentity)
                    throw new UserError($"--merge: partial {p}: computed with features {m.FeatureIdentity}, not {featureIdentity}; partials merge only with the extractor they were computed with");
                if (m.ReferenceIdentity != referenceIdentity)
                    throw new UserError($"--merge: partial {p}: computed against reference {m.Reference} ({m.ReferenceIdentity[..Math.Min(20, m.ReferenceIdentity.Length)]}…), not this --reference; give the reference the partials were computed with");
                if (m.N != parts[0].M.N) throw new UserError($"--merge: partial {p}: N {m.N} differs from partial {parts[0].Path}'s {parts[0].M.N}");
            }
            var ordered = parts.Where(p => p.M.Count > 0).OrderBy(p => p.M.Start).ToList();
            long next = 0, n = parts[0].M.N;
            string? prev = null;
            foreach (var p in ordered)
            {
                if (p.M.Start < next) throw new UserError($"--merge: partial {p.Path}: rows {p.M.Start}…{p.M.Start + p.M.Count - 1} overlap partial {prev}'s");
                if (p.M.Start > next) throw new UserError($"--merge: rows {next}…{p.M.Start - 1} of N = {n} are missing (no partial holds them)");
                next = p.M.Start + p.M.Count;
                prev = p.Path;
            }
            if (next < n) throw new UserError($"--merge: rows {next}…{n - 1} of N = {n} are missing (no partial holds them)");
            if (n < 2) throw new UserError($"--merge: N = {n}; need at least two samples");
            using var scope = NewDisposeScope();
            var features = cat(ordered.Select(p => p.A["features"]).ToList(), 0);
            Tensor? raw = ordered.All(p => p.A.ContainsKey("raw")) ? cat(ordered.Select(p => p.A["raw"]).ToList(), 0) : null;
            var sum = ordered.Select(p => p.A["sum"]).Aggregate((a, b) => a.Add(b));
            var outer = ordered.Select(p => p.A["outer"]).Aggregate((a, b) => a.Add(b));
            var mu = sum.Div(n);
            var cov = (outer - mu.outer(mu).Mul(n)).Div(n - 1);
            var stats = new FeatureStatistics(mu, cov, n);
            return (features.MoveToOuterDisposeScope(), raw?.MoveToOuterDisposeScope(), stats, parts[0].M);
        }
        finally
        {
            foreach (var p in parts) foreach (var t in p.A.Values) t.Dispose();
        }
    }
}
