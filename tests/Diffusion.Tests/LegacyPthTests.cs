using Diffusion.IO;
using Diffusion.Metrics.Features;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>
/// State dicts in PyTorch's legacy torch.save container (before 1.6, not a zip), as pytorch-fid's Inception weights are
/// saved. The fixtures were written by Debian's PyTorch 1.13 with <c>_use_new_zipfile_serialization=False</c>:
///   /usr/bin/python3 tests/tools/legacy_pth_fixture.py tests/Diffusion.Tests/Fixtures
/// (the script documents every tensor's formula; not needed to run these tests). Every value is recomputed here.
/// </summary>
public class LegacyPthTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    private static float[] Floats(Tensor t) => t.contiguous().data<float>().ToArray();

    [Fact]
    public void Legacy_fixture_reads_value_by_value_with_dtypes_views_and_shared_storages()
    {
        var path = Fixture("legacy-state-dict.pth");
        Assert.True(StateDictFiles.IsPyTorchFile(path));
        var sd = StateDictFiles.ReadPyTorch(path);
        try
        {
            Assert.Equal(new[] { "a.weight", "a.bias", "t.weight", "s.weight", "s.full", "d.running", "bn.num_batches_tracked", "i.index" }, sd.Keys);

            var a = sd["a.weight"];
            Assert.Equal(ScalarType.Float32, a.dtype);
            Assert.Equal(new long[] { 2, 3, 4 }, a.shape);
            Assert.Equal(Enumerable.Range(0, 24).Select(i => (i - 7) / 8f), Floats(a));

            var b = sd["a.bias"];
            Assert.Equal(new long[] { 5 }, b.shape);
            Assert.Equal(Enumerable.Range(0, 5).Select(i => i * 0.25f - 1), Floats(b));

            // Saved as the transposed view (strides (1, 3)) of a [5, 3] with m[r, c] = 10 r + c.
            var t = sd["t.weight"];
            Assert.Equal(new long[] { 3, 5 }, t.shape);
            Assert.Equal(from i in Enumerable.Range(0, 3) from j in Enumerable.Range(0, 5) select (float)(10 * j + i), Floats(t));

            // A strided slice (offset 6, strides (6, 2)) of the storage "s.full" also uses.
            var full = sd["s.full"];
            Assert.Equal(new long[] { 4, 6 }, full.shape);
            Assert.Equal(Enumerable.Range(0, 24).Select(i => 0.5f * i), Floats(full));
            var s = sd["s.weight"];
            Assert.Equal(new long[] { 2, 3 }, s.shape);
            Assert.Equal(from r in Enumerable.Range(1, 2) from c in new[] { 0, 2, 4 } select 0.5f * (6 * r + c), Floats(s));
            Assert.True(s.is_contiguous());

            var d = sd["d.running"];
            Assert.Equal(ScalarType.Float64, d.dtype);
            Assert.Equal(new[] { 1.0 / 3, -2.0 / 7, 1e-300 }, d.data<double>().ToArray());

            var nbt = sd["bn.num_batches_tracked"];
            Assert.Equal(ScalarType.Int64, nbt.dtype);
            Assert.Empty(nbt.shape);
            Assert.Equal(1234567890123L, nbt.item<long>());

            var idx = sd["i.index"];
            Assert.Equal(ScalarType.Int64, idx.dtype);
            Assert.Equal(new[] { -(1L << 40), -1L, 0L, (1L << 53) + 1 }, idx.data<long>().ToArray());
        }
        finally { foreach (var v in sd.Values) v.Dispose(); }
    }

    [Fact]
    public void Legacy_module_state_dict_with_metadata_and_the_other_storage_types_reads()
    {
        // A real module's state_dict() (an OrderedDict whose _metadata comes with a BUILD), as pytorch-fid saved its weights.
        var sd = StateDictFiles.ReadPyTorch(Fixture("legacy-module.pth"));
        try
        {
            Assert.Equal(new[] { "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
                "x.half", "x.bf16", "x.bool", "x.int32" }, sd.Keys);
            Assert.Equal(new long[] { 3, 2, 1, 1 }, sd["0.weight"].shape);
            foreach (var name in new[] { "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var" })
            {
                Assert.Equal(ScalarType.Float32, sd[name].dtype);
                Assert.Equal(Enumerable.Range(0, (int)sd[name].numel()).Select(i => 0.5f * i - 1), Floats(sd[name]));
            }
            Assert.Equal(5L, sd["1.num_batches_tracked"].item<long>());

            Assert.Equal(ScalarType.Float16, sd["x.half"].dtype);
            Assert.Equal(new[] { 0.5f, -2, 65504, MathF.Pow(2, -24) }, Floats(sd["x.half"].to_type(ScalarType.Float32)));
            Assert.Equal(ScalarType.BFloat16, sd["x.bf16"].dtype);
            Assert.Equal(new[] { 1f, -3.5f, MathF.Pow(2, 100), MathF.Pow(2, -7) }, Floats(sd["x.bf16"].to_type(ScalarType.Float32)));
            Assert.Equal(ScalarType.Bool, sd["x.bool"].dtype);
            Assert.Equal(new[] { true, false, true }, sd["x.bool"].data<bool>().ToArray());
            Assert.Equal(ScalarType.Int32, sd["x.int32"].dtype);
            Assert.Equal(new[] { -5, 7, int.MaxValue }, sd["x.int32"].data<int>().ToArray());
        }
        finally { foreach (var v in sd.Values) v.Dispose(); }
    }

    [Fact]
    public void Legacy_file_with_pytorch_fids_names_goes_through_the_inception_loader()
    {
        // {"state_dict": {...}} with two of the real names: the nested dict is taken, names map one to one.
        var path = Fixture("legacy-inception-names.pth");
        var sd = StateDictFiles.ReadPyTorch(path);
        try
        {
            Assert.Equal(new[] { "Conv2d_1a_3x3.conv.weight", "Conv2d_1a_3x3.bn.num_batches_tracked" }, sd.Keys);
            var w = sd["Conv2d_1a_3x3.conv.weight"];
            Assert.Equal(new long[] { 32, 3, 3, 3 }, w.shape);
            var expected = Enumerable.Range(0, 32 * 27).Select(i => (i % 97) * 0.001f - 0.05f).ToArray();
            var got = Floats(w);
            for (int i = 0; i < got.Length; i++) Assert.True(Math.Abs(got[i] - expected[i]) <= 1e-7f, $"[{i}] {got[i]} vs {expected[i]}");
            Assert.Equal(0L, sd["Conv2d_1a_3x3.bn.num_batches_tracked"].item<long>());
        }
        finally { foreach (var v in sd.Values) v.Dispose(); }

        // Through --inception-weights' loader: the conv weight is accepted by name and shape, num_batches_tracked is
        // skipped, and the check stops at the next tensor of the network, which this small file does not hold.
        Assert.True(StateDictFiles.IsPyTorchFile(path));
        var e = Assert.Throws<UserError>(() => InceptionFid.Load(path));
        Assert.StartsWith(path, e.Message);
        Assert.Contains("missing tensor 'Conv2d_1a_3x3.bn.weight'", e.Message);
    }

    [Fact]
    public void Broken_legacy_files_are_one_line_errors_naming_the_file()
    {
        var dir = TestUtil.TempDir("legacy-pth");
        var bytes = File.ReadAllBytes(Fixture("legacy-state-dict.pth"));

        // Truncated anywhere: in the pickles, in the key list, in the storages.
        foreach (int n in new[] { 3, 40, bytes.Length / 2, bytes.Length - 400, bytes.Length - 1 })
        {
            var cut = Path.Combine(dir, $"cut{n}.pth");
            File.WriteAllBytes(cut, bytes[..n]);
            var e = Assert.Throws<UserError>(() => StateDictFiles.ReadPyTorch(cut));
            Assert.StartsWith(cut, e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
        var end = Path.Combine(dir, $"cut{bytes.Length - 1}.pth");
        Assert.Contains("truncated", Assert.Throws<UserError>(() => StateDictFiles.ReadPyTorch(end)).Message);

        // An unknown storage type (same length, so the rest of the file stays valid).
        var unknown = Path.Combine(dir, "unknown.pth");
        File.WriteAllBytes(unknown, Replace(bytes, "torch\nFloatStorage", "torch\nFlo4tStorage"));
        var u = Assert.Throws<UserError>(() => StateDictFiles.ReadPyTorch(unknown));
        Assert.StartsWith(unknown, u.Message);
        Assert.Contains("unsupported storage type torch.Flo4tStorage", u.Message);

        // A pickle that is not torch.save's.
        var plain = Path.Combine(dir, "plain.pth");
        File.WriteAllBytes(plain, [0x80, 0x02, 0x4b, 0x07, 0x2e]); // pickle.dumps(7, protocol=2)
        var p = Assert.Throws<UserError>(() => StateDictFiles.ReadPyTorch(plain));
        Assert.StartsWith(plain, p.Message);
        Assert.Contains("magic number", p.Message);
    }

    [Fact]
    public void Any_corrupted_byte_gives_a_state_dict_or_a_one_line_error()
    {
        // Every byte of the fixture flipped in turn: the reader either still finds a state dict (a changed value or key)
        // or stops with a one-line UserError naming the file, never with another exception.
        var dir = TestUtil.TempDir("legacy-pth-flip");
        var bytes = File.ReadAllBytes(Fixture("legacy-state-dict.pth"));
        var path = Path.Combine(dir, "flipped.pth");
        int errors = 0;
        for (int i = 0; i < bytes.Length; i++)
        {
            var copy = (byte[])bytes.Clone();
            copy[i] ^= 0xFF;
            File.WriteAllBytes(path, copy);
            try
            {
                foreach (var t in StateDictFiles.ReadPyTorch(path).Values) t.Dispose();
            }
            catch (UserError e)
            {
                errors++;
                Assert.StartsWith(path, e.Message);
                Assert.DoesNotContain('\n', e.Message);
            }
        }
        Assert.InRange(errors, 1, bytes.Length - 1);
    }

    private static byte[] Replace(byte[] data, string from, string to)
    {
        var f = System.Text.Encoding.ASCII.GetBytes(from);
        var t = System.Text.Encoding.ASCII.GetBytes(to);
        var result = (byte[])data.Clone();
        int found = 0;
        for (int i = 0; i + f.Length <= result.Length; i++)
        {
            if (!result.AsSpan(i, f.Length).SequenceEqual(f)) continue;
            t.CopyTo(result, i);
            found++;
        }
        Assert.True(found > 0, $"'{from}' not in the fixture");
        return result;
    }
}
