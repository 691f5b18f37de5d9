using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Diffusion.Data;
using static TorchSharp.torch;

namespace Diffusion.Sampling;

/// <summary>
/// What a shard's samples belong to, written beside them in its part file: everything that decides sample i's values
/// (the model's fingerprint, the sampler and all its options, the seed, the dtype, x_T's file when given) and which
/// samples the part holds (N, S, k, first index, count). Parts belong together when everything but the last group is
/// equal; <see cref="SampleParts.Merge"/> checks that.
/// </summary>
public sealed record PartManifest
{
    public const string CurrentFormat = "diffusion-sample-part/1";

    /// <summary>The format, and with it the noise derivation (per-sample generators seeded by <see cref="NoiseSource.SampleSeed"/>).</summary>
    public string Format { get; init; } = CurrentFormat;
    /// <summary>What was sampled, as given: "checkpoint PATH" or "gmm:SPEC.json" (informative; the fingerprint decides).</summary>
    public string Source { get; init; } = "";
    /// <summary>SHA-256 of the checkpoint file (or mixture spec) sampled, hex.</summary>
    public string Fingerprint { get; init; } = "";
    /// <summary>The weights sampled: ema or model (checkpoints), "exact" (mixtures).</summary>
    public string Weights { get; init; } = "";
    /// <summary>The resolved sample config: sampler, steps and every option.</summary>
    public JsonObject Sampler { get; init; } = new();
    public string Description { get; init; } = "";
    public long Seed { get; init; }
    public string Dtype { get; init; } = "float32";
    /// <summary>The network's arithmetic (float32 or bf16-mixed; float32 for mixtures): it changes the samples' bits.</summary>
    public string Precision { get; init; } = "float32";
    public long[] ExampleShape { get; init; } = [];
    /// <summary>SHA-256 of the --init-noise file when x_T came from one, else null.</summary>
    public string? InitNoise { get; init; }
    public long N { get; init; }
    public int Shards { get; init; } = 1;
    public int Shard { get; init; }
    public long Start { get; init; }
    public long Count { get; init; }

    /// <summary>The fields that must be equal for parts to belong together, with how to name each in an error.</summary>
    internal IEnumerable<(string Name, string Value)> Identity()
    {
        yield return ("format", Format);
        yield return ("model fingerprint", Fingerprint[..Math.Min(16, Fingerprint.Length)] + (Fingerprint.Length > 16 ? "…" : ""));
        yield return ("weights", Weights);
        yield return ("sampler and options", Sampler.ToJsonString());
        yield return ("seed", Seed.ToString(System.Globalization.CultureInfo.InvariantCulture));
        yield return ("dtype", Dtype);
        yield return ("precision", Precision);
        yield return ("example shape", $"[{string.Join(", ", ExampleShape)}]");
        yield return ("init noise", InitNoise ?? "none");
        yield return ("N", N.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }
}

/// <summary>
/// Part files of a sharded sampling run and their merge. A part is an .npz archive holding <c>samples.npy</c> (the
/// shard's rows, in index order), for a class-conditional model <c>labels.npy</c> (the class of each row, int64), and
/// <c>manifest.json</c> (<see cref="PartManifest"/>), written atomically, so a part is either complete or absent.
/// </summary>
public static class SampleParts
{
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.Never,
    };

    /// <summary>SHA-256 of a file, lower-case hex.</summary>
    public static string FileSha256(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }

    /// <summary>Writes a part; <paramref name="labels"/> (int64, one class per row) for a class-conditional model, else null.</summary>
    public static void Write(string path, Tensor samples, PartManifest manifest, Tensor? labels = null)
    {
        if (samples.shape[0] != manifest.Count) throw new ArgumentException($"{samples.shape[0]} rows for a manifest of {manifest.Count}");
        if (labels is not null && (labels.dtype != ScalarType.Int64 || !labels.shape.SequenceEqual([manifest.Count])))
            throw new ArgumentException($"labels of {labels.dtype} [{string.Join(", ", labels.shape)}] for a manifest of {manifest.Count} rows; expected int64 [{manifest.Count}]");
        var arrays = new List<(string, Tensor)> { ("samples", samples) };
        if (labels is not null) arrays.Add(("labels", labels));
        Npz.Write(path, arrays, [("manifest.json", JsonSerializer.SerializeToUtf8Bytes(manifest, Json))]);
    }

    /// <summary>Reads a part; anything that is not a complete, consistent part file is a one-line <see cref="UserError"/> naming it.</summary>
    public static (Tensor Samples, PartManifest Manifest) Read(string path)
    {
        var (samples, m, labels) = ReadWithLabels(path);
        labels?.Dispose();
        return (samples, m);
    }

    /// <summary>As <see cref="Read"/>, with the part's class labels (int64, one per row) when it has them, else null.</summary>
    public static (Tensor Samples, PartManifest Manifest, Tensor? Labels) ReadWithLabels(string path)
    {
        var (arrays, other) = Npz.ReadAll(path);
        try
        {
            if (!other.TryGetValue("manifest.json", out var bytes) || !arrays.TryGetValue("samples", out var samples))
                throw new UserError($"{path}: not a sample part (expected an .npz with samples.npy and manifest.json, as sample --shard writes)");
            PartManifest m;
            try { m = JsonSerializer.Deserialize<PartManifest>(bytes, Json) ?? throw new JsonException("empty"); }
            catch (JsonException e) { throw new UserError($"{path}: manifest.json is not a readable part manifest ({e.Message.ReplaceLineEndings(" ")})"); }
            if (m.Format != PartManifest.CurrentFormat) throw new UserError($"{path}: part format '{m.Format}'; expected {PartManifest.CurrentFormat}");
            if (m.N < 1 || m.Start < 0 || m.Count < 0 || m.Start + m.Count > m.N)
                throw new UserError($"{path}: manifest indices {m.Start}…{m.Start + m.Count - 1} do not fit N = {m.N}");
            var expected = new long[] { m.Count }.Concat(m.ExampleShape).ToArray();
            if (!samples.shape.SequenceEqual(expected))
                throw new UserError($"{path}: samples of shape [{string.Join(", ", samples.shape)}]; its manifest says [{string.Join(", ", expected)}]");
            Tensor? labels = null;
            if (arrays.TryGetValue("labels", out var l))
            {
                if (l.dtype != ScalarType.Int64 || !l.shape.SequenceEqual([m.Count]))
                    throw new UserError($"{path}: labels.npy of {l.dtype} [{string.Join(", ", l.shape)}]; expected int64 [{m.Count}], one class per sample");
                labels = l;
                arrays.Remove("labels");
            }
            arrays.Remove("samples");
            return (samples, m, labels);
        }
        finally
        {
            foreach (var t in arrays.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Joins parts in index order. Refuses, naming the part and the reason, parts of another model, sampler or options,
    /// seed, dtype or N than the first, parts whose indices overlap, and a set of parts that leaves indices missing.
    /// Parts of different shard counts may be joined (sample i does not depend on the split). The labels of a
    /// class-conditional run's parts are joined the same way (null when the parts have none).
    /// </summary>
    public static (Tensor Samples, PartManifest Manifest, Tensor? Labels) Merge(IReadOnlyList<string> paths)
    {
        if (paths.Count == 0) throw new UserError("merge: no parts given; expected one or more part files written by sample --shard");
        var parts = new List<(string Path, Tensor Samples, PartManifest M, Tensor? Labels)>();
        try
        {
            foreach (var p in paths)
            {
                var (s, m, l) = ReadWithLabels(p);
                parts.Add((p, s, m, l));
            }
            var first = parts[0];
            var firstId = first.M.Identity().ToList();
            foreach (var part in parts.Skip(1))
                foreach (var ((name, a), (_, b)) in firstId.Zip(part.M.Identity()))
                    if (a != b) throw new UserError($"merge: part {part.Path}: {name} {b} differs from part {first.Path}'s {a}; parts of one run share model, sampler, seed and N");
            foreach (var part in parts.Skip(1))
                if ((part.Labels is null) != (first.Labels is null))
                    throw new UserError($"merge: part {part.Path} {(part.Labels is null ? "has no" : "has")} class labels and part {first.Path} {(first.Labels is null ? "has none" : "has them")}; parts of one run agree");
            var ordered = parts.Where(p => p.M.Count > 0).OrderBy(p => p.M.Start).ToList();
            long next = 0;
            (string Path, Tensor Samples, PartManifest M, Tensor? Labels)? previous = null;
            foreach (var p in ordered)
            {
                if (p.M.Start < next)
                    throw new UserError($"merge: part {p.Path}: indices {Span(p.M)} overlap part {previous!.Value.Path}'s {Span(previous.Value.M)}");
                if (p.M.Start > next) throw new UserError($"merge: indices {next}…{p.M.Start - 1} of N = {first.M.N} are missing (no part holds them)");
                next = p.M.Start + p.M.Count;
                previous = p;
            }
            if (next < first.M.N) throw new UserError($"merge: indices {next}…{first.M.N - 1} of N = {first.M.N} are missing (no part holds them)");
            var all = cat(ordered.Select(p => p.Samples).ToList(), 0);
            var labels = first.Labels is null ? null : cat(ordered.Select(p => p.Labels!).ToList(), 0);
            return (all, first.M with { Shards = 1, Shard = 0, Start = 0, Count = first.M.N }, labels);
        }
        finally
        {
            foreach (var p in parts) { p.Samples.Dispose(); p.Labels?.Dispose(); }
        }
    }

    private static string Span(PartManifest m) => $"{m.Start}…{m.Start + m.Count - 1}";
}
