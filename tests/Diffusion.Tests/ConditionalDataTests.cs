using Diffusion.Config;
using Diffusion.Data;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>Labels from every labelled source: IDX, the mnist package, image sub-folders, npy with a labels file, mixtures.</summary>
public class ConditionalDataTests
{
    private static Dataset Load(string spec, int imageSize = 28) => DataSources.Load(new DataConfig { Spec = spec, ImageSize = imageSize, Channels = 0 });

    [Fact]
    public void Fashion_mnist_test_split_has_ten_named_balanced_classes()
    {
        using var ds = Load("fashion-mnist:test");
        Assert.Equal(10, ds.ClassCount);
        Assert.Equal("Ankle boot", ds.ClassNames![9]);
        using var counts = bincount(ds.Labels!);
        Assert.All(counts.data<long>().ToArray(), c => Assert.Equal(1000, c)); // the test split has 1 000 of each class
    }

    [Fact]
    public void Mnist_package_digits_are_labelled_by_their_file()
    {
        if (MnistJson.FindPackage() is null) return; // installed by make setup
        using var ds = Load("mnist");
        Assert.Equal(10, ds.ClassCount);
        Assert.Equal(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"], ds.ClassNames);
        var l = ds.Labels!.data<long>().ToArray();
        Assert.Equal(0, l[0]);
        Assert.Equal(9, l[^1]);
        Assert.True(l.Zip(l.Skip(1)).All(p => p.First <= p.Second)); // files 0.json … 9.json in order
    }

    [Fact]
    public void Image_sub_folders_are_classes_in_name_order()
    {
        var dir = TestUtil.TempDir("classes");
        foreach (var (cls, v) in new[] { ("zebra", 200), ("ant", 10), ("moth", 120) })
        {
            Directory.CreateDirectory(Path.Combine(dir, cls));
            for (int i = 0; i < 2; i++) DataTests.WritePng(Path.Combine(dir, cls, $"{i}.png"), 8, 8, (x, y) => ((byte)v, (byte)v, (byte)v));
        }
        using (var ds = Load($"images:{dir}", 8))
        {
            Assert.Equal(["ant", "moth", "zebra"], ds.ClassNames);
            Assert.Equal(new long[] { 0, 0, 1, 1, 2, 2 }, ds.Labels!.data<long>().ToArray());
            // the label follows the image: ant's pixels are 10, zebra's 200
            Assert.Equal(10 / 127.5f - 1, ds.Data[0, 0, 0, 0].item<float>(), 4);
            Assert.Equal(200 / 127.5f - 1, ds.Data[5, 0, 0, 0].item<float>(), 4);
        }
        // an image directly in DIR: no classes
        DataTests.WritePng(Path.Combine(dir, "loose.png"), 8, 8, (x, y) => (0, 0, 0));
        using (var ds = Load($"images:{dir}", 8))
        {
            Assert.Null(ds.Labels);
            Assert.Null(ds.ClassNames);
        }
    }

    [Fact]
    public void Npy_takes_a_labels_file_and_refuses_a_wrong_one()
    {
        var dir = TestUtil.TempDir("npy-labels");
        string x = Path.Combine(dir, "x.npy"), l = Path.Combine(dir, "l.npy");
        using (var t = randn(5, 3)) Npy.Write(x, t);
        Npy.WriteLabels(l, [2, 0, 1, 2, 4]);
        using (var ds = Load($"npy:{x}?labels={l}"))
        {
            Assert.Equal(new long[] { 2, 0, 1, 2, 4 }, ds.Labels!.data<long>().ToArray());
            Assert.Equal(5, ds.ClassCount);
            Assert.Null(ds.ClassNames);
        }
        using (var ds = Load($"npy:{x}")) Assert.Null(ds.Labels);
        Assert.Equal("toy", DataKinds.DefaultConfigName($"npy:{x}?labels={l}"));

        Npy.WriteLabels(l, [0, 1, 2]);
        var e = Assert.Throws<UserError>(() => Load($"npy:{x}?labels={l}"));
        Assert.Equal($"{l}: 3 labels; expected 5, one per example", e.Message);
        Npy.WriteLabels(l, [0, 1, -1, 0, 0]);
        Assert.Contains("negative label", Assert.Throws<UserError>(() => Load($"npy:{x}?labels={l}")).Message);
        using (var f = zeros(5)) Npy.Write(l, f);
        Assert.Contains("expected integers", Assert.Throws<UserError>(() => Load($"npy:{x}?labels={l}")).Message);
        Assert.Contains("unknown option 'label'", Assert.Throws<UserError>(() => Load($"npy:{x}?label={l}")).Message);
    }

    [Fact]
    public void Mixture_points_are_labelled_by_their_component()
    {
        using var ds = Load("toy:gmm-grid?n=4000&std=0.05");
        Assert.Equal(49, ds.Mixture!.Components);
        // every point lies within 5σ of the mean of the component its label names
        using var mu = tensor(ds.Mixture.Means.SelectMany(m => m).ToArray()).reshape(49, 2).to_type(ScalarType.Float32);
        using var d = (ds.Data - mu.index_select(0, ds.Labels!)).norm(1);
        Assert.True(d.max().item<float>() < 5 * 0.05 * Math.Sqrt(2));
        // the points are the ones the unlabelled draw gives (same generator stream)
        using var g = new Generator(0);
        using var plain = ds.Mixture.Sample(4000, g);
        Assert.True(plain.to_type(ScalarType.Float32).equal(ds.Data).all().item<bool>());
    }
}
