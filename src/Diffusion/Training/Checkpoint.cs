using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Diffusion.Config;
using Diffusion.Models;
using Diffusion.Util;
using TorchSharp.Modules;

namespace Diffusion.Training;

/// <summary>What a checkpoint says about the run besides its tensors.</summary>
public sealed class CheckpointHeader
{
    public int FormatVersion { get; set; } = Checkpoint.Version;
    /// <summary>The full run configuration.</summary>
    public JsonObject Config { get; set; } = new();
    /// <summary>Shape of one training example, e.g. [1, 28, 28] or [2].</summary>
    public long[] ExampleShape { get; set; } = [];
    /// <summary>Optimisation steps taken.</summary>
    public long Step { get; set; }
    /// <summary>State of the training generator (t, noise, flips), base64.</summary>
    public string GeneratorState { get; set; } = "";
    /// <summary>State of libtorch's global generator (dropout), base64.</summary>
    public string GlobalRngState { get; set; } = "";
    /// <summary>Training wall time so far, seconds.</summary>
    public double ElapsedSeconds { get; set; }
    public string CreatedUtc { get; set; } = "";
    /// <summary>
    /// <see cref="Schedules.NoiseSchedule.Fingerprint"/> of the schedule the run was trained with (empty in checkpoints
    /// written before fingerprints existed, which are not checked).
    /// </summary>
    public string ScheduleFingerprint { get; set; } = "";

    /// <summary>Refuses a schedule rebuilt from the saved config that is not the one the run was trained with.</summary>
    public void CheckSchedule(Schedules.NoiseSchedule rebuilt, string path)
    {
        if (ScheduleFingerprint != "" && ScheduleFingerprint != rebuilt.Fingerprint)
            throw new UserError($"checkpoint {path}: its schedule has fingerprint {ScheduleFingerprint}, but the schedule its config describes is now {rebuilt.Fingerprint} (the schedule's formula changed); refusing to use the weights with a different ᾱ");
    }

    /// <summary>
    /// The run's config. A checkpoint written before <c>train.precision</c> existed was trained in float32, and says so
    /// here (the default, auto, would otherwise switch a resumed run's arithmetic).
    /// </summary>
    public RunConfig RunConfig(string origin)
    {
        var tree = (JsonObject)Config.DeepClone();
        if (tree["train"] is JsonObject train && !train.ContainsKey("precision")) train["precision"] = "float32";
        return ConfigLoader.FromTree(tree, origin);
    }
}

/// <summary>
/// One file holding a training run: header (config, example shape, step, RNG states) and the model,
/// EMA and optimizer states in TorchSharp's own format. Layout (version 2): "DIFFCKPT", int32 version, the
/// header as int32-length-prefixed UTF-8 JSON and its SHA-256, an int32 section count, then per section its
/// name, int64 length, bytes and their SHA-256, then "DIFFEND!". Version 1 files (header as a .NET string,
/// no checksums) are still read. Every read verifies every checksum, so a damaged file is refused naming the
/// damaged section. Written atomically (temporary file then rename), so a run killed while saving keeps its
/// previous checkpoint.
/// </summary>
public static class Checkpoint
{
    public const int Version = 2;
    /// <summary>The first format, without checksums; still read.</summary>
    public const int Version1 = 1;
    public const string FileName = "checkpoint.ckpt";
    private const int HashLength = 32;
    private static readonly byte[] Magic = Encoding.ASCII.GetBytes("DIFFCKPT");
    private static readonly byte[] EndMagic = Encoding.ASCII.GetBytes("DIFFEND!");

    private static readonly JsonSerializerOptions HeaderJson = new() { PropertyNamingPolicy = JsonNamingPolicy.KebabCaseLower, WriteIndented = false };

    /// <summary>A run folder (its checkpoint.ckpt) or a checkpoint file.</summary>
    public static string Resolve(string path)
    {
        if (Directory.Exists(path))
        {
            var f = Path.Combine(path, FileName);
            if (!File.Exists(f)) throw new UserError($"--checkpoint {path}: the folder holds no {FileName}");
            return f;
        }
        if (!File.Exists(path)) throw new UserError($"--checkpoint {path}: no such file or run folder");
        return path;
    }

    /// <summary>Writes the model, EMA and optimizer sections with <paramref name="header"/> (see <see cref="Write"/>).</summary>
    public static void Save(string path, CheckpointHeader header, DenoiserNetwork model, DenoiserNetwork? ema, OptimizerHelper? optimizer, string? keepPreviousAs = null)
    {
        var sections = new List<(string Name, byte[] Data)> { ("model", ModuleBytes(model)) };
        if (ema is not null) sections.Add(("ema", ModuleBytes(ema)));
        if (optimizer is not null)
        {
            using var ms = new MemoryStream();
            using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true)) optimizer.save_state_dict(w);
            sections.Add(("optimizer", ms.ToArray()));
        }
        Write(path, header, sections, keepPreviousAs);
    }

    /// <summary>
    /// Writes a header and named sections, each with its SHA-256, as a checkpoint file, atomically; with
    /// <paramref name="keepPreviousAs"/> an existing file at <paramref name="path"/> is kept under that name
    /// (see <see cref="AtomicFile.Write"/>).
    /// </summary>
    public static void Write(string path, CheckpointHeader header, IReadOnlyList<(string Name, byte[] Data)> sections, string? keepPreviousAs = null)
    {
        header.FormatVersion = Version;
        header.CreatedUtc = DateTime.UtcNow.ToString("o");
        AtomicFile.Write(path, s =>
        {
            using var w = new BinaryWriter(s, Encoding.UTF8, leaveOpen: true);
            w.Write(Magic);
            w.Write(Version);
            var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header, HeaderJson));
            w.Write(json.Length);
            w.Write(json);
            w.Write(SHA256.HashData(json));
            w.Write(sections.Count);
            foreach (var (name, data) in sections)
            {
                w.Write(name);
                w.Write((long)data.Length);
                w.Write(data);
                w.Write(SHA256.HashData(data));
            }
            w.Write(EndMagic);
        }, keepPreviousAs);
    }

    /// <summary>
    /// The checkpoint's header and its sections' bytes, every checksum verified; a damaged file is one clear error
    /// (<see cref="CheckpointDamagedError"/> naming the section whose SHA-256 does not match).
    /// </summary>
    public static (CheckpointHeader Header, Dictionary<string, byte[]> Sections) Read(string path)
    {
        try
        {
            using var fs = File.OpenRead(path);
            using var r = new BinaryReader(fs, Encoding.UTF8);
            if (!r.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic)) throw new UserError($"checkpoint {path}: not a diffusion checkpoint (bad magic)");
            int version = r.ReadInt32();
            if (version != Version && version != Version1) throw new UserError($"checkpoint {path}: format version {version}; this program reads versions {Version1} and {Version}");
            bool checksums = version >= 2;
            string json;
            if (checksums)
            {
                int jsonLength = r.ReadInt32();
                if (jsonLength < 0 || jsonLength > fs.Length - fs.Position) throw new InvalidDataException("the header runs past the end of the file");
                var jsonBytes = r.ReadBytes(jsonLength);
                Verify(path, "header", jsonBytes, r);
                json = Encoding.UTF8.GetString(jsonBytes);
            }
            else json = r.ReadString();
            var header = JsonSerializer.Deserialize<CheckpointHeader>(json, HeaderJson) ?? throw new InvalidDataException("empty header");
            int count = r.ReadInt32();
            if (count < 0 || count > 64) throw new InvalidDataException("bad section count");
            var sections = new Dictionary<string, byte[]>();
            for (int i = 0; i < count; i++)
            {
                string name = r.ReadString();
                long len = r.ReadInt64();
                if (len < 0 || len > fs.Length - fs.Position) throw new InvalidDataException($"section {name} runs past the end of the file");
                var data = r.ReadBytes((int)len);
                if (checksums) Verify(path, name, data, r);
                sections[name] = data;
            }
            if (!r.ReadBytes(EndMagic.Length).AsSpan().SequenceEqual(EndMagic)) throw new InvalidDataException("missing end marker");
            return (header, sections);
        }
        catch (UserError) { throw; }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or JsonException or IOException or ArgumentException)
        {
            throw new UserError($"checkpoint {path}: corrupt or truncated ({e.Message.ReplaceLineEndings(" ")})");
        }
    }

    public static CheckpointHeader ReadHeader(string path) => Read(path).Header;

    // Reads the SHA-256 stored after a section's bytes and refuses the file when the bytes do not hash to it.
    private static void Verify(string path, string section, byte[] data, BinaryReader r)
    {
        var stored = r.ReadBytes(HashLength);
        if (stored.Length != HashLength) throw new EndOfStreamException($"the checksum of section '{section}' is cut off");
        if (!SHA256.HashData(data).AsSpan().SequenceEqual(stored)) throw new CheckpointDamagedError(path, section);
    }

    /// <summary>Loads a section into a module (strictly: every name and shape must match).</summary>
    public static void LoadModule(string path, Dictionary<string, byte[]> sections, string name, TorchSharp.torch.nn.Module module)
    {
        if (!sections.TryGetValue(name, out var data)) throw new UserError($"checkpoint {path}: has no '{name}' weights");
        try
        {
            using var ms = new MemoryStream(data);
            using var r = new BinaryReader(ms);
            module.load(r, strict: true);
        }
        catch (Exception e) when (e is not UserError)
        {
            throw new UserError($"checkpoint {path}: the '{name}' weights do not fit the model its config describes ({e.Message.ReplaceLineEndings(" ")})");
        }
    }

    public static void LoadOptimizer(string path, Dictionary<string, byte[]> sections, OptimizerHelper optimizer)
    {
        if (!sections.TryGetValue("optimizer", out var data)) throw new UserError($"checkpoint {path}: has no optimizer state to resume from");
        try
        {
            using var ms = new MemoryStream(data);
            using var r = new BinaryReader(ms);
            optimizer.load_state_dict(r);
        }
        catch (Exception e) when (e is not UserError)
        {
            throw new UserError($"checkpoint {path}: the optimizer state does not load ({e.Message.ReplaceLineEndings(" ")})");
        }
    }

    private static byte[] ModuleBytes(TorchSharp.torch.nn.Module m)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true)) m.save(w);
        return ms.ToArray();
    }
}
