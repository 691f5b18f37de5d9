using System.IO.Compression;
using Diffusion.Config;
using Diffusion.Data;
using StbImageWriteSharp;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>Every data source, on small data the tests make themselves, and its errors.</summary>
public class DataTests
{
    private static Dataset Load(string spec, string? dir = null, int imageSize = 32, int channels = 0) =>
        DataSources.Load(new DataConfig { Spec = spec, DataDir = dir, ImageSize = imageSize, Channels = channels });

    [Fact]
    public void Toy_sets_have_the_documented_shape_and_are_seeded()
    {
        foreach (var name in Toy2D.Names)
        {
            using var a = Load($"toy:{name}?n=500");
            using var b = Load($"toy:{name}?n=500");
            using var c = Load($"toy:{name}?n=500&seed=7");
            Assert.Equal(new long[] { 500, 2 }, a.Data.shape);
            Assert.True(a.Data.equal(b.Data).all().item<bool>());
            Assert.False(a.Data.equal(c.Data).all().item<bool>());
            Assert.True(a.Data.abs().max().item<float>() < 4);
        }
        using var grid = Load("toy:gmm-grid?n=4900&std=0.01");
        Assert.Equal(49, grid.Mixture!.Components);
        // With a tiny std every point sits at a grid node in {−1.5, −1, …, 1.5}².
        var snapped = (grid.Data * 2).round() / 2;
        Assert.True((grid.Data - snapped).abs().max().item<float>() < 0.06);
        Assert.True(snapped.abs().max().item<float>() <= 1.5f);
        var e = Assert.Throws<UserError>(() => Load("toy:moons?bogus=1"));
        Assert.Contains("unknown option 'bogus'", e.Message);
        Assert.Contains("unknown toy dataset", Assert.Throws<UserError>(() => Load("toy:spiral")).Message);
        Assert.Contains("not an integer", Assert.Throws<UserError>(() => Load("toy:rings?n=ten")).Message);
    }

    private static byte[] IdxImages(int n, int h, int w, Func<int, int, int, byte> pixel)
    {
        var b = new List<byte> { 0, 0, 8, 3 };
        foreach (var v in new[] { n, h, w }) b.AddRange(new[] { (byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v });
        for (int i = 0; i < n; i++) for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) b.Add(pixel(i, y, x));
        return b.ToArray();
    }

    private static byte[] IdxLabels(int n)
    {
        var b = new List<byte> { 0, 0, 8, 1, (byte)(n >> 24), (byte)(n >> 16), (byte)(n >> 8), (byte)n };
        for (int i = 0; i < n; i++) b.Add((byte)(i % 10));
        return b.ToArray();
    }

    private static void WriteGz(string path, byte[] data)
    {
        using var fs = File.Create(path);
        using var gz = new GZipStream(fs, CompressionLevel.Fastest);
        gz.Write(data);
    }

    [Fact]
    public void Fashion_mnist_idx_files_load_scaled_to_minus_one_one()
    {
        var dir = TestUtil.TempDir("idx");
        WriteGz(Path.Combine(dir, "train-images-idx3-ubyte.gz"), IdxImages(6, 28, 28, (i, y, x) => (byte)((i * 40 + y + x) % 256)));
        WriteGz(Path.Combine(dir, "train-labels-idx1-ubyte.gz"), IdxLabels(6));
        File.WriteAllBytes(Path.Combine(dir, "t10k-images-idx3-ubyte"), IdxImages(2, 28, 28, (i, y, x) => 255));
        File.WriteAllBytes(Path.Combine(dir, "t10k-labels-idx1-ubyte"), IdxLabels(2));
        using var train = Load("fashion-mnist", dir);
        Assert.Equal(new long[] { 6, 1, 28, 28 }, train.Data.shape);
        Assert.Equal((3 * 40 + 5 + 7) / 127.5f - 1f, train.Data[3, 0, 5, 7].item<float>(), 5);
        Assert.Equal(new long[] { 0, 1, 2, 3, 4, 5 }, train.Labels!.data<long>().ToArray());
        using var test = Load("fashion-mnist:test", dir);
        Assert.Equal(2, test.Count);
        Assert.Equal(1f, test.Data.max().item<float>());
    }

    [Fact]
    public void Idx_errors_name_the_file()
    {
        var dir = TestUtil.TempDir("idx-bad");
        var e = Assert.Throws<UserError>(() => Load("fashion-mnist", dir));
        Assert.Contains("train-images-idx3-ubyte", e.Message);
        // Truncated data
        var img = IdxImages(4, 28, 28, (i, y, x) => 1);
        WriteGz(Path.Combine(dir, "train-images-idx3-ubyte.gz"), img[..(img.Length - 100)]);
        WriteGz(Path.Combine(dir, "train-labels-idx1-ubyte.gz"), IdxLabels(4));
        e = Assert.Throws<UserError>(() => Load("fashion-mnist", dir));
        Assert.Contains("truncated", e.Message);
        Assert.Contains("train-images-idx3-ubyte.gz", e.Message);
        // Not gzip at all
        File.WriteAllText(Path.Combine(dir, "train-images-idx3-ubyte.gz"), "hello");
        e = Assert.Throws<UserError>(() => Load("fashion-mnist", dir));
        Assert.Contains("corrupt gzip", e.Message);
        // Bad magic
        WriteGz(Path.Combine(dir, "train-images-idx3-ubyte.gz"), [1, 2, 3, 4, 5, 6, 7, 8]);
        Assert.Contains("not an IDX file", Assert.Throws<UserError>(() => Load("fashion-mnist", dir)).Message);
        Assert.Contains("not found", Assert.Throws<UserError>(() => Load("fashion-mnist", Path.Combine(dir, "missing"))).Message);
        Assert.Contains("unknown split", Assert.Throws<UserError>(() => Load("fashion-mnist:valid", dir)).Message);
    }

    [Fact]
    public void Mnist_json_package_loads_with_labels()
    {
        var dir = TestUtil.TempDir("mnist");
        for (int d = 0; d < 10; d++)
        {
            int count = d % 3 + 1;
            var values = Enumerable.Range(0, count * 784).Select(i => (i % 784 == 0 ? 1.0 : d / 10.0).ToString(System.Globalization.CultureInfo.InvariantCulture));
            File.WriteAllText(Path.Combine(dir, $"{d}.json"), "{ \"data\": [" + string.Join(",", values) + "] }");
        }
        using var ds = Load("mnist", dir);
        int total = Enumerable.Range(0, 10).Sum(d => d % 3 + 1);
        Assert.Equal(new long[] { total, 1, 28, 28 }, ds.Data.shape);
        Assert.Equal(1f, ds.Data[0, 0, 0, 0].item<float>());
        Assert.Equal(-1f, ds.Data[0, 0, 0, 1].item<float>());      // digit 0 → value 0 → −1
        Assert.Equal(9L, ds.Labels![total - 1].item<long>());
        Assert.Equal(2 * 0.9f - 1, ds.Data[total - 1, 0, 5, 5].item<float>(), 5);

        File.WriteAllText(Path.Combine(dir, "4.json"), "{ \"data\": [1, 2, 3] }");
        Assert.Contains("not a whole number of 28×28 images", Assert.Throws<UserError>(() => Load("mnist", dir)).Message);
        File.WriteAllText(Path.Combine(dir, "4.json"), "{ \"data\": [1, 2,");
        Assert.Contains("4.json: not valid JSON", Assert.Throws<UserError>(() => Load("mnist", dir)).Message);
        File.Delete(Path.Combine(dir, "4.json"));
        Assert.Contains("4.json not found", Assert.Throws<UserError>(() => Load("mnist", dir)).Message);
    }

    internal static void WritePng(string path, int w, int h, Func<int, int, (byte R, byte G, byte B)> px)
    {
        var data = new byte[w * h * 3];
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) { var (r, g, b) = px(x, y); int o = (y * w + x) * 3; data[o] = r; data[o + 1] = g; data[o + 2] = b; }
        using var fs = File.Create(path);
        new ImageWriter().WritePng(data, w, h, ColorComponents.RedGreenBlue, fs);
    }

    [Fact]
    public void Image_folder_resizes_crops_and_detects_gray()
    {
        var dir = TestUtil.TempDir("images");
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        // 40×20 landscape: left half black, right half white → after short-side resize to 16 and centre crop, a
        // 16×16 image whose left half is darker than its right.
        WritePng(Path.Combine(dir, "a.png"), 40, 20, (x, y) => x < 20 ? ((byte)0, (byte)0, (byte)0) : ((byte)255, (byte)255, (byte)255));
        WritePng(Path.Combine(dir, "sub", "b.png"), 16, 16, (x, y) => ((byte)128, (byte)128, (byte)128));
        File.WriteAllText(Path.Combine(dir, "notes.txt"), "ignored");
        using (var ds = Load($"images:{dir}", imageSize: 16))
        {
            Assert.Equal(new long[] { 2, 1, 16, 16 }, ds.Data.shape);
            Assert.True(ds.Data[0, 0, 8, 0].item<float>() < ds.Data[0, 0, 8, 15].item<float>());
            Assert.Equal(128 / 127.5f - 1, ds.Data[1, 0, 3, 3].item<float>(), 4);
        }
        WritePng(Path.Combine(dir, "c.png"), 16, 16, (x, y) => ((byte)255, (byte)0, (byte)0));
        using (var ds = Load($"images:{dir}", imageSize: 16))
        {
            Assert.Equal(3, ds.Data.shape[1]);
            // Sorted by path: a.png, c.png, sub/b.png.
            Assert.Equal(1f, ds.Data[1, 0, 0, 0].item<float>(), 4);
            Assert.Equal(-1f, ds.Data[1, 1, 0, 0].item<float>(), 4);
        }
        using (var gray = Load($"images:{dir}", imageSize: 8, channels: 1)) Assert.Equal(new long[] { 3, 1, 8, 8 }, gray.Data.shape);
        File.WriteAllText(Path.Combine(dir, "broken.png"), "not a png");
        var e = Assert.Throws<UserError>(() => Load($"images:{dir}", imageSize: 16));
        Assert.Contains("broken.png", e.Message);
        Assert.Contains("no .png", Assert.Throws<UserError>(() => Load($"images:{TestUtil.TempDir("empty")}")).Message);
        Assert.Contains("not found", Assert.Throws<UserError>(() => Load($"images:{dir}/nope")).Message);
    }

    [Fact]
    public void Npy_round_trips_and_reports_bad_files()
    {
        var dir = TestUtil.TempDir("npy");
        using var x = arange(24, dtype: ScalarType.Float64).reshape(2, 3, 2, 2) / 7.0;
        string p = Path.Combine(dir, "x.npy");
        Npy.Write(p, x);
        using (var back = Npy.Read(p))
        {
            Assert.Equal(ScalarType.Float64, back.dtype);
            Assert.True(back.equal(x).all().item<bool>());
        }
        Assert.Equal(new long[] { 2, 3, 2, 2 }, Npy.ReadShape(p));
        using (var ds = Load($"npy:{p}")) Assert.Equal(new long[] { 2, 3, 2, 2 }, ds.Data.shape);
        using var v = tensor(new float[] { 1, 2, 3, 4, 5, 6 }, [3, 2]);
        string pv = Path.Combine(dir, "v.npy");
        Npy.Write(pv, v);
        using (var ds = Load($"npy:{pv}")) Assert.Equal(new long[] { 3, 2 }, ds.Data.shape);
        // A header written by numpy for a (3,) float32 vector.
        var hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
        hdr = hdr.PadRight(64 - 10 - 1) + "\n";
        var bytes = new List<byte> { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0, (byte)hdr.Length, 0 };
        bytes.AddRange(System.Text.Encoding.ASCII.GetBytes(hdr));
        foreach (var f in new[] { 1.5f, -2f, 3.25f }) bytes.AddRange(BitConverter.GetBytes(f));
        File.WriteAllBytes(Path.Combine(dir, "np.npy"), bytes.ToArray());
        using (var t = Npy.Read(Path.Combine(dir, "np.npy"))) Assert.Equal(new[] { 1.5f, -2f, 3.25f }, t.data<float>().ToArray());
        File.WriteAllBytes(Path.Combine(dir, "short.npy"), bytes.Take(bytes.Count - 4).ToArray());
        Assert.Contains("truncated", Assert.Throws<UserError>(() => Npy.Read(Path.Combine(dir, "short.npy"))).Message);
        File.WriteAllText(Path.Combine(dir, "text.npy"), "hello world");
        Assert.Contains("not a .npy file", Assert.Throws<UserError>(() => Load($"npy:{dir}/text.npy")).Message);
        Assert.Contains("expected an N×D or N×C×H×W array", Assert.Throws<UserError>(() => Load($"npy:{dir}/np.npy")).Message);
        Assert.Contains("not found", Assert.Throws<UserError>(() => Load($"npy:{dir}/missing.npy")).Message);
    }

    [Fact]
    public void Unknown_specs_are_one_line_errors()
    {
        var e = Assert.Throws<UserError>(() => Load("cifar10"));
        Assert.Contains("unknown kind", e.Message);
        Assert.DoesNotContain("\n", e.Message);
        Assert.Contains("gmm:", e.Message);
    }
}
