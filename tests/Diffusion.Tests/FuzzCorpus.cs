using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Diffusion.Cli;
using Diffusion.Data;
using Diffusion.Training;
using StbImageWriteSharp;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>
/// The generator of the damaged inputs under Fixtures/fuzz, one folder per family (npy, noise, samples, npz,
/// idx, images, config, gmm, ckpt) plus valid/ (the well-formed companions the cases need). Deterministic
/// except the checkpoint family, cut from a tiny real training run (its weights and RNG states are libtorch's
/// and may differ across builds; the damage is the same). It lives in the test project because it needs the
/// library's writers and the CLI's entry point, both already referenced here; a separate tool would be one
/// more project to build. Regenerate with
/// <c>DIFFUSION_FUZZ_REGENERATE=1 dotnet test tests/Diffusion.Tests --filter FuzzCorpusGenerator</c>.
/// </summary>
public static class FuzzCorpus
{
    /// <summary>Fixtures/fuzz of the source tree (the generator writes there; the tests read the copy in the output folder).</summary>
    public static string SourceDir()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var p = Path.Combine(d.FullName, "tests", "Diffusion.Tests");
            if (Directory.Exists(p)) return Path.Combine(p, "Fixtures", "fuzz");
        }
        throw new InvalidOperationException("tests/Diffusion.Tests not found above " + AppContext.BaseDirectory);
    }

    public static string OutputDir => Path.Combine(AppContext.BaseDirectory, "Fixtures", "fuzz");

    public static void Generate(string dir)
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(dir);
        void Put(string rel, byte[] bytes)
        {
            var p = Path.Combine(dir, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(p)!);
            File.WriteAllBytes(p, bytes);
        }
        void Text(string rel, string s) => Put(rel, Encoding.UTF8.GetBytes(s));

        // ---- valid companions ----
        const string Mixture = """{"weights":[0.5,0.5],"means":[[-1,0],[1,0]],"stds":[0.2,0.2],"schedule":{"name":"linear","T":100}}""";
        Text("valid/mixture.json", Mixture);
        var rows = Enumerable.Range(0, 16).Select(i => (float)Math.Sin(i * 0.7)).ToArray();
        Put("valid/samples.npy", NpyBytes("<f4", "(8, 2)", Floats(rows)));

        // ---- .npy, bad wherever an array is read (train --data npy:, sample --init-noise, eval --samples) ----
        var good = NpyBytes("<f4", "(8, 2)", Floats(rows));
        Put("npy/empty.npy", []);
        Put("npy/magic-only.npy", good[..6]);
        Put("npy/wrong-magic.npy", [.. "\x93NUMPZ"u8, .. good[6..]]);
        Put("npy/header-cut.npy", good[..40]);
        Put("npy/data-truncated.npy", good[..^5]);
        Put("npy/version-9.npy", [.. good[..6], 9, 0, .. good[8..]]);
        Put("npy/header-length-huge.npy", [.. good[..8], 0xff, 0xff, .. good[10..]]);
        Put("npy/int8.npy", NpyBytes("|i1", "(8, 2)", new byte[16]));
        Put("npy/complex64.npy", NpyBytes("<c8", "(8, 2)", new byte[128]));
        Put("npy/unicode.npy", NpyBytes("<U3", "(8, 2)", new byte[192]));
        Put("npy/object.npy", NpyBytes("|O", "(8, 2)", new byte[128]));
        Put("npy/big-endian.npy", NpyBytes(">f4", "(8, 2)", Floats(rows)));
        Put("npy/fortran.npy", NpyBytes("<f4", "(8, 2)", Floats(rows), fortran: true));
        Put("npy/shape-longer-than-data.npy", NpyBytes("<f4", "(1000, 2)", Floats(rows)));
        Put("npy/1d.npy", NpyBytes("<f4", "(16,)", Floats(rows)));
        Put("npy/3d.npy", NpyBytes("<f4", "(2, 4, 2)", Floats(rows)));
        Put("npy/5d.npy", NpyBytes("<f4", "(1, 2, 2, 2, 2)", Floats(rows)));
        Put("npy/0d.npy", NpyBytes("<f4", "()", Floats([1f])));
        Put("npy/zero-rows.npy", NpyBytes("<f4", "(0, 2)", []));
        Put("npy/negative-shape.npy", NpyBytes("<f4", "(-8, 2)", Floats(rows)));
        Put("npy/overflowing-shape.npy", NpyBytes("<f4", "(4611686018427387904, 4)", Floats(rows)));
        Put("npy/shape-not-numbers.npy", NpyBytes("<f4", "('a', 2)", Floats(rows)));
        Put("npy/no-descr.npy", NpyBytes(null, "(8, 2)", Floats(rows)));
        var flipped = (byte[])good.Clone();
        flipped[12] ^= 0x20; // the header's opening quote of 'descr'
        flipped[20] ^= 0x01;
        Put("npy/bitflip-header.npy", flipped);
        Text("npy/text.npy", "x,y\n0.1,0.2\n");

        // ---- .npy that are well-formed but wrong for x_T (sample --init-noise, model of dimension 2) or for samples ----
        Put("noise/int32.npy", NpyBytes("<i4", "(8, 2)", new byte[64]));
        Put("noise/width-3.npy", NpyBytes("<f4", "(4, 3)", Floats(rows[..12])));
        Put("noise/images.npy", NpyBytes("<f4", "(1, 1, 4, 4)", Floats(rows)));
        Put("samples/one-row.npy", NpyBytes("<f4", "(1, 2)", Floats(rows[..2])));
        Put("samples/width-3.npy", NpyBytes("<f4", "(4, 3)", Floats(rows[..12])));

        // ---- .npz reference statistics (eval --reference) ----
        var mu = NpyBytes("<f8", "(2,)", Doubles([0, 0]));
        var sigma = NpyBytes("<f8", "(2, 2)", Doubles([1, 0, 0, 1]));
        var goodNpz = Zip(("mu.npy", mu), ("sigma.npy", sigma));
        Put("npz/empty.npz", []);
        Text("npz/text.npz", "mu = [0, 0]\n");
        Put("npz/truncated.npz", goodNpz[..(goodNpz.Length / 2)]);
        Put("npz/end-cut.npz", goodNpz[..^10]);
        var npzFlip = (byte[])goodNpz.Clone();
        for (int i = goodNpz.Length - 22; i < goodNpz.Length - 6; i++) npzFlip[i] ^= 0x5a; // the end-of-central-directory record
        Put("npz/bitflip-directory.npz", npzFlip);
        Put("npz/no-sigma.npz", Zip(("mu.npy", mu)));
        Put("npz/no-arrays.npz", Zip(("readme.txt", "hello"u8.ToArray())));
        Put("npz/member-not-npy.npz", Zip(("mu.npy", "garbage"u8.ToArray()), ("sigma.npy", sigma)));
        Put("npz/member-truncated.npz", Zip(("mu.npy", mu), ("sigma.npy", sigma[..^8])));
        Put("npz/sigma-wrong-shape.npz", Zip(("mu.npy", mu), ("sigma.npy", NpyBytes("<f8", "(3, 3)", Doubles(new double[9])))));
        Put("npz/mu-2d.npz", Zip(("mu.npy", sigma), ("sigma.npy", sigma)));
        Put("npz/meta-not-json.npz", Zip(("mu.npy", mu), ("sigma.npy", sigma), ("meta.json", "{features:"u8.ToArray())));
        Put("npz/meta-wrong-types.npz", Zip(("mu.npy", mu), ("sigma.npy", sigma), ("meta.json", """{"n": "many", "example_shape": ["two"]}"""u8.ToArray())));
        Put("npz/mu-int8.npz", Zip(("mu.npy", NpyBytes("|i1", "(2,)", new byte[2])), ("sigma.npy", sigma)));

        // ---- IDX sets (train --data fashion-mnist --data-dir DIR): one damaged file, the other valid ----
        var images = Idx(3, [4, 2, 2], new byte[16]);
        var labels = Idx(1, [4], [0, 1, 2, 3]);
        void IdxSet(string name, byte[] img, byte[]? lab = null, bool gz = false)
        {
            string ext = gz ? ".gz" : "";
            Put($"idx/{name}/train-images-idx3-ubyte{ext}", img);
            Put($"idx/{name}/train-labels-idx1-ubyte", lab ?? labels);
        }
        IdxSet("raw-empty", []);
        IdxSet("raw-wrong-magic", [0x08, 0x03, .. images[2..]]);
        IdxSet("raw-float-type", [0, 0, 0x0d, .. images[3..]]);
        IdxSet("raw-zero-dims", [0, 0, 8, 0]);
        IdxSet("raw-nine-dims", [0, 0, 8, 9, .. images[4..]]);
        IdxSet("raw-2d-images", Idx(2, [4, 4], new byte[16]));
        IdxSet("raw-header-cut", images[..9]);
        IdxSet("raw-data-truncated", images[..^3]);
        IdxSet("raw-oversized", [.. images, 1, 2, 3]);
        IdxSet("raw-negative-size", [0, 0, 8, 3, 0xff, 0xff, 0xff, 0xfc, .. images[8..]]);
        IdxSet("raw-huge-sizes", [0, 0, 8, 3, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, .. images[16..]]);
        IdxSet("raw-labels-mismatch", images, Idx(1, [3], [0, 1, 2]));
        IdxSet("raw-labels-2d", images, Idx(2, [4, 1], [0, 1, 2, 3]));
        var gzImages = Gzip(images);
        IdxSet("gz-truncated", gzImages[..(gzImages.Length / 2)], gz: true);
        var gzFlip = (byte[])gzImages.Clone();
        for (int i = 10; i < gzFlip.Length - 8; i++) gzFlip[i] ^= 0xff;
        IdxSet("gz-bitflip", gzFlip, gz: true);
        IdxSet("gz-not-gzip", images, gz: true);
        IdxSet("gz-empty", [], gz: true);
        IdxSet("gz-wrong-magic", Gzip([0x1f, 0x8b, .. images[2..]]), gz: true);

        // ---- image folders (train --data images:DIR, eval --samples DIR): one damaged image each ----
        var rgb = new byte[8 * 8 * 3];
        for (int i = 0; i < rgb.Length; i++) rgb[i] = (byte)(i * 37);
        byte[] png, jpg;
        using (var ms = new MemoryStream()) { new ImageWriter().WritePng(rgb, 8, 8, StbImageWriteSharp.ColorComponents.RedGreenBlue, ms); png = ms.ToArray(); }
        using (var ms = new MemoryStream()) { new ImageWriter().WriteJpg(rgb, 8, 8, StbImageWriteSharp.ColorComponents.RedGreenBlue, ms, 90); jpg = ms.ToArray(); }
        Put("images/png-truncated/a.png", png[..(png.Length / 2)]);
        var pngFlip = (byte[])png.Clone();
        for (int i = 33; i < png.Length - 12; i++) pngFlip[i] ^= 0xa5;
        Put("images/png-bitflip/a.png", pngFlip);
        Put("images/png-zero-bytes/a.png", []);
        Put("images/png-signature-only/a.png", png[..8]);
        Text("images/png-text/a.png", "this is not an image\n");
        var pngHuge = (byte[])png.Clone();
        pngHuge[16] = 0x7f; pngHuge[20] = 0x7f; // IHDR width and height ≈ 2³¹
        Put("images/png-huge-dimensions/a.png", pngHuge);
        Put("images/jpeg-truncated/a.jpg", jpg[..24]); // cut in the headers: stb decodes a JPEG cut in its scan data, grey below the cut
        var jpgFlip = (byte[])jpg.Clone();
        for (int i = 2; i < 40; i++) jpgFlip[i] ^= 0xff;
        Put("images/jpeg-bitflip/a.jpg", jpgFlip);
        Put("images/jpeg-zero-bytes/a.jpeg", []);
        Put("images/jpeg-is-png/a.jpg", pngFlip);
        Text("images/jpeg-text/a.jpg", "<html>not a jpeg</html>\n");

        // ---- run configs (train --config F) ----
        Text("config/json-syntax.json", """{"train": {"steps": 10,, }""");
        Text("config/json-trailing-garbage.json", """{"train": {"steps": 10}} }""");
        Text("config/json-top-level-array.json", "[1, 2, 3]");
        Put("config/json-empty.json", []);
        Text("config/json-unknown-key.json", """{"train": {"stepz": 10}}""");
        Text("config/json-unknown-section.json", """{"trian": {"steps": 10}}""");
        Text("config/json-wrong-type.json", """{"train": {"lr": "fast"}}""");
        Text("config/json-section-not-object.json", """{"model": 3}""");
        Text("config/json-number-overflow.json", """{"train": {"steps": 1e40}}""");
        Text("config/json-negative-steps.json", """{"data": {"spec": "toy:moons"}, "train": {"steps": -5}}""");
        Text("config/json-nan-lr.json", """{"data": {"spec": "toy:moons"}, "train": {"lr": "NaN"}}""");
        Text("config/toml-syntax.toml", "[train\nsteps = 10\n");
        Text("config/toml-unknown-key.toml", "[model]\nhiden = 64\n");
        Text("config/toml-wrong-type.toml", "[train]\nbatch-size = \"big\"\n");
        Text("config/toml-zero-timesteps.toml", "[data]\nspec = \"toy:moons\"\n[schedule]\ntimesteps = 0\n");
        Text("config/toml-ema-decay-2.toml", "[data]\nspec = \"toy:moons\"\n[ema]\ndecay = 2.0\n");
        Text("config/toml-dropout-out-of-range.toml", "[data]\nspec = \"toy:moons\"\n[model]\ndropout = 1.5\n");
        Text("config/toml-unknown-model-type.toml", "[data]\nspec = \"toy:moons\"\n[model]\ntype = \"transformer\"\n");
        Text("config/toml-unknown-sampler.toml", "[data]\nspec = \"toy:moons\"\n[sample]\nsampler = \"magic\"\n");
        Put("config/toml-binary.toml", [0x00, 0xff, 0xfe, 0x5b, 0x00, 0x0a, 0x93, 0x4e]);
        Text("config/wrong-extension.yaml", "train:\n  steps: 10\n");

        // ---- Gaussian-mixture specs (train --data gmm:, sample --model gmm:, diagnose --model gmm:, eval --reference gmm:) ----
        Put("gmm/empty.json", []);
        Text("gmm/syntax.json", """{"weights": [1], "means": [[0, 0]""");
        Text("gmm/top-level-array.json", "[1, 2]");
        Text("gmm/missing-weights.json", """{"means": [[0, 0]], "stds": [1]}""");
        Text("gmm/missing-stds.json", """{"weights": [1], "means": [[0, 0]]}""");
        Text("gmm/mismatched-lengths.json", """{"weights": [0.5, 0.5], "means": [[0, 0]], "stds": [1, 1]}""");
        Text("gmm/ragged-means.json", """{"weights": [0.5, 0.5], "means": [[0, 0], [1]], "stds": [1, 1]}""");
        Text("gmm/empty-mean.json", """{"weights": [1], "means": [[]], "stds": [1]}""");
        Text("gmm/null-mean.json", """{"weights": [1], "means": [null], "stds": [1]}""");
        Text("gmm/no-components.json", """{"weights": [], "means": [], "stds": []}""");
        Text("gmm/negative-std.json", """{"weights": [1], "means": [[0, 0]], "stds": [-0.5]}""");
        Text("gmm/nan-std.json", """{"weights": [1], "means": [[0, 0]], "stds": [NaN]}""");
        Text("gmm/nan-std-string.json", """{"weights": [1], "means": [[0, 0]], "stds": ["NaN"]}""");
        Text("gmm/infinite-mean.json", """{"weights": [1], "means": [[1e400, 0]], "stds": [1]}""");
        Text("gmm/negative-weight.json", """{"weights": [1, -1], "means": [[0, 0], [1, 1]], "stds": [1, 1]}""");
        Text("gmm/wrong-type.json", """{"weights": "1", "means": [[0, 0]], "stds": [1]}""");
        Text("gmm/unknown-key.json", """{"weights": [1], "means": [[0, 0]], "stds": [1], "covariance": [[1]]}""");
        Text("gmm/zero-timesteps.json", """{"weights": [1], "means": [[0, 0]], "stds": [1], "schedule": {"name": "linear", "T": 0}}""");
        Text("gmm/unknown-schedule.json", """{"weights": [1], "means": [[0, 0]], "stds": [1], "schedule": {"name": "wobbly", "T": 10}}""");
        Text("gmm/betas-out-of-range.json", """{"weights": [1], "means": [[0, 0]], "stds": [1], "schedule": {"betas": [0.1, 1.5]}}""");

        // ---- checkpoints (sample --checkpoint, diagnose --checkpoint): cut from a tiny real run ----
        var (header, sections) = TinyRun();
        byte[] Ckpt(CheckpointHeader h, IReadOnlyList<(string, byte[])>? s = null, int version = Checkpoint.Version) => CheckpointBytes(h, s ?? sections, version);
        var ck = Ckpt(header);
        Put("ckpt/empty.ckpt", []);
        Text("ckpt/text.ckpt", "checkpoint\n");
        Put("ckpt/wrong-magic.ckpt", [.. "DIFFCKPX"u8, .. ck[8..]]);
        Put("ckpt/magic-only.ckpt", ck[..8]);
        Put("ckpt/header-cut.ckpt", ck[..40]);
        Put("ckpt/half.ckpt", ck[..(ck.Length / 2)]);
        Put("ckpt/end-marker-cut.ckpt", ck[..^4]);
        Put("ckpt/version-7.ckpt", Ckpt(header, version: 7));
        var ckFlip = (byte[])ck.Clone();
        ckFlip[14] ^= 0x04; ckFlip[30] ^= 0x40; // in the header's JSON
        Put("ckpt/bitflip-header.ckpt", ckFlip);
        var ckLen = (byte[])ck.Clone();
        ckLen[12] = 0xff; ckLen[13] = 0xff; ckLen[14] = 0xff; ckLen[15] = 0x07; // the header string's length prefix
        Put("ckpt/header-length-huge.ckpt", ckLen);
        Put("ckpt/no-sections.ckpt", Ckpt(header, []));
        Put("ckpt/ema-garbage.ckpt", Ckpt(header, [.. sections.Where(s => s.Name != "ema"), ("ema", "garbage"u8.ToArray())]));
        CheckpointHeader Edit(Action<CheckpointHeader> edit)
        {
            var h = JsonSerializer.Deserialize<CheckpointHeader>(JsonSerializer.Serialize(header, HeaderJson), HeaderJson)!;
            edit(h);
            return h;
        }
        Put("ckpt/config-unknown-key.ckpt", Ckpt(Edit(h => h.Config["model"]!["hiden"] = 3)));
        Put("ckpt/config-wrong-type.ckpt", Ckpt(Edit(h => h.Config["model"]!["hidden"] = "wide")));
        Put("ckpt/config-out-of-range.ckpt", Ckpt(Edit(h => h.Config["schedule"]!["timesteps"] = -1)));
        Put("ckpt/weights-misfit.ckpt", Ckpt(Edit(h => h.Config["model"]!["hidden"] = 24)));
        Put("ckpt/example-shape-3.ckpt", Ckpt(Edit(h => h.ExampleShape = [3])));
        Put("ckpt/example-shape-empty.ckpt", Ckpt(Edit(h => h.ExampleShape = [])));
        Put("ckpt/schedule-fingerprint.ckpt", Ckpt(Edit(h => h.ScheduleFingerprint = new string('0', 64))));
    }

    private static readonly JsonSerializerOptions HeaderJson = new() { PropertyNamingPolicy = JsonNamingPolicy.KebabCaseLower, WriteIndented = false };

    // Two steps of a 16-wide MLP on toy:moons, run through the CLI; its checkpoint's header and weights.
    private static (CheckpointHeader Header, List<(string Name, byte[] Data)> Sections) TinyRun()
    {
        string run = Path.Combine(Path.GetTempPath(), $"fuzz-corpus-{Environment.ProcessId}");
        if (Directory.Exists(run)) Directory.Delete(run, recursive: true);
        try
        {
            int code = Entry.Run(["train", "--data", "toy:moons?n=64", "--steps", "2", "--seed", "1", "--out", run, "--quiet", "--threads", "1",
                "--set", "model.hidden=16", "--set", "model.blocks=1", "--set", "model.time-embed-dim=8", "--set", "train.batch-size=16",
                "--set", "schedule.timesteps=50", "--set", "sample.n=8", "--set", "sample.steps=5", "--set", "train.warmup-steps=0"]);
            if (code != 0) throw new InvalidOperationException($"the tiny training run failed with exit code {code}");
            var (h, s) = Checkpoint.Read(Path.Combine(run, Checkpoint.FileName));
            h.CreatedUtc = "2000-01-01T00:00:00.0000000Z";
            h.ElapsedSeconds = 0;
            return (h, s.Where(kv => kv.Key != "optimizer").Select(kv => (kv.Key, kv.Value)).ToList()); // sampling needs no optimizer state
        }
        finally { if (Directory.Exists(run)) Directory.Delete(run, recursive: true); }
    }

    // The checkpoint layout of Checkpoint.Write, with the header as given (Write stamps the time).
    private static byte[] CheckpointBytes(CheckpointHeader header, IReadOnlyList<(string Name, byte[] Data)> sections, int version)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            w.Write("DIFFCKPT"u8);
            w.Write(version);
            w.Write(JsonSerializer.Serialize(header, HeaderJson));
            w.Write(sections.Count);
            foreach (var (name, data) in sections)
            {
                w.Write(name);
                w.Write((long)data.Length);
                w.Write(data);
            }
            w.Write("DIFFEND!"u8);
        }
        return ms.ToArray();
    }

    /// <summary>A version-1 .npy file with the given descr (none when null), shape text and data bytes.</summary>
    private static byte[] NpyBytes(string? descr, string shape, byte[] data, bool fortran = false)
    {
        string d = descr is null ? "" : $"'descr': '{descr}', ";
        string header = $"{{{d}'fortran_order': {(fortran ? "True" : "False")}, 'shape': {shape}, }}";
        int pad = (64 - (10 + header.Length + 1) % 64) % 64;
        header += new string(' ', pad) + "\n";
        return [0x93, .. "NUMPY"u8, 1, 0, .. BitConverter.GetBytes((ushort)header.Length), .. Encoding.Latin1.GetBytes(header), .. data];
    }

    private static byte[] Floats(float[] v) => v.SelectMany(BitConverter.GetBytes).ToArray();
    private static byte[] Doubles(double[] v) => v.SelectMany(BitConverter.GetBytes).ToArray();

    private static byte[] Idx(int dims, int[] shape, byte[] data)
    {
        var b = new List<byte> { 0, 0, 8, (byte)dims };
        foreach (var s in shape) b.AddRange([(byte)(s >> 24), (byte)(s >> 16), (byte)(s >> 8), (byte)s]);
        b.AddRange(data);
        return b.ToArray();
    }

    private static byte[] Gzip(byte[] data)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.SmallestSize, leaveOpen: true)) gz.Write(data);
        var b = ms.ToArray();
        b[4] = b[5] = b[6] = b[7] = 0; // no modification time
        return b;
    }

    // A zip archive with fixed timestamps, members stored as np.savez stores them.
    private static byte[] Zip(params (string Name, byte[] Bytes)[] members)
    {
        using var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var (name, bytes) in members)
            {
                var e = zip.CreateEntry(name, CompressionLevel.NoCompression);
                e.LastWriteTime = new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);
                using var s = e.Open();
                s.Write(bytes);
            }
        return ms.ToArray();
    }
}
