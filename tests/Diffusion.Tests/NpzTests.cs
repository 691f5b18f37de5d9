using Diffusion.Data;
using static TorchSharp.torch;

namespace Diffusion.Tests;

public class NpzTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    [Theory]
    [InlineData("numpy-savez.npz")]
    [InlineData("numpy-savez-compressed.npz")]
    public void Reads_what_numpy_writes(string file)
    {
        // Written by NumPy (tests/tools/npz_fixture.py): stored and deflated members, float64, float32 and a 0-d int64.
        var a = Npz.Read(Fixture(file));
        Assert.Equal(4, a.Count);
        Assert.Equal(ScalarType.Float64, a["mu"].dtype);
        Assert.Equal([0.5, -1.25, 3.0], TestUtil.Row(a["mu"]));
        Assert.Equal(new long[] { 3, 3 }, a["sigma"].shape);
        Assert.Equal(0.25, a["sigma"][1, 2].item<double>());
        var w = a["Mixed_5b.branch1x1.conv.weight"];
        Assert.Equal(new long[] { 2, 3, 2, 2 }, w.shape);
        Assert.Equal(23 / 8f, w[1, 2, 1, 1].item<float>());
        Assert.Equal(7L, a["Mixed_5b.branch1x1.bn.num_batches_tracked"].item<long>());
        foreach (var t in a.Values) t.Dispose();
    }

    [Fact]
    public void Round_trips_arrays_and_raw_members()
    {
        var path = Path.Combine(TestUtil.TempDir("npz"), "x.npz");
        using var x = arange(6, dtype: ScalarType.Float64).reshape(2, 3);
        using var y = ones(4);
        Npz.Write(path, [("x", x), ("y", y)], [("meta.json", System.Text.Encoding.UTF8.GetBytes("{\"a\":1}"))]);
        var (arrays, other) = Npz.ReadAll(path);
        Assert.True(arrays["x"].equal(x).all().item<bool>());
        Assert.Equal(ScalarType.Float32, arrays["y"].dtype);
        Assert.Equal("{\"a\":1}", System.Text.Encoding.UTF8.GetString(other["meta.json"]));
    }
}
