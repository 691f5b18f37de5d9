using Diffusion.Config;
using Diffusion.Data;
using Diffusion.Diagnostics;
using Diffusion.Metrics.Features;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>The registry of data kinds: what each kind declares, and that every place that names kinds reads it.</summary>
public class DataKindsTests
{
    private static Dataset Load(string spec) => DataSources.Load(new DataConfig { Spec = spec });

    [Fact]
    public void Help_lists_every_form_in_the_registry_order()
    {
        Assert.Equal("toy:gmm-grid, toy:moons, toy:swiss-roll, toy:rings, gmm:SPEC.json, fashion-mnist[:test], mnist, images:DIR, npy:FILE[?labels=LABELS.npy]", DataSources.Help);
        Assert.Equal(["toy", "gmm", "fashion-mnist", "mnist", "images", "npy"], DataKinds.All.Select(k => k.Name));
        Assert.True(DataKinds.IsDataSpec("toy:moons?n=10") && DataKinds.IsDataSpec("fashion-mnist:test") && DataKinds.IsDataSpec("npy:x.npy"));
        Assert.False(DataKinds.IsDataSpec("samples/") || DataKinds.IsDataSpec("cifar10"));
    }

    [Fact]
    public void Default_configs_come_from_the_kind_and_npy_from_the_file_shape()
    {
        Assert.Equal("toy", DataKinds.DefaultConfigName("toy:moons?n=10"));
        Assert.Equal("toy", DataKinds.DefaultConfigName("gmm:spec.json"));
        Assert.Equal("image28", DataKinds.DefaultConfigName("fashion-mnist:test"));
        Assert.Equal("image28", DataKinds.DefaultConfigName("mnist"));
        Assert.Equal("image32", DataKinds.DefaultConfigName("images:photos/"));
        Assert.Equal("toy", DataKinds.DefaultConfigName("cifar10")); // loading it then reports the unknown kind
        var dir = TestUtil.TempDir("kinds-npy");
        using (var v = zeros(4, 3)) Npy.Write(Path.Combine(dir, "v.npy"), v);
        using (var a = zeros(2, 1, 28, 28)) Npy.Write(Path.Combine(dir, "a.npy"), a);
        using (var b = zeros(2, 3, 32, 32)) Npy.Write(Path.Combine(dir, "b.npy"), b);
        Assert.Equal("toy", DataKinds.DefaultConfigName($"npy:{dir}/v.npy"));
        Assert.Equal("image28", DataKinds.DefaultConfigName($"npy:{dir}/a.npy"));
        Assert.Equal("image32", DataKinds.DefaultConfigName($"npy:{dir}/b.npy"));
    }

    [Fact]
    public void Held_out_data_is_the_test_split_another_seed_or_the_data_itself()
    {
        Assert.Equal("fashion-mnist:test", DiagnosticModel.HeldOutSpec("fashion-mnist"));
        Assert.Equal("toy:moons?n=100&seed=9001", DiagnosticModel.HeldOutSpec("toy:moons?seed=3&n=100"));
        Assert.Equal("toy:gmm-grid?seed=9001", DiagnosticModel.HeldOutSpec("toy:gmm-grid"));
        Assert.Equal("gmm:a.json?n=500&seed=9001", DiagnosticModel.HeldOutSpec("gmm:a.json?n=500"));
        foreach (var spec in new[] { "mnist", "images:photos/", "npy:x.npy", "cifar10" })
            Assert.Equal(spec, DiagnosticModel.HeldOutSpec(spec));
    }

    [Fact]
    public void Default_features_are_the_kinds_or_follow_the_data_shape()
    {
        Assert.Equal("classifier:fashion-mnist", FeatureExtractors.DefaultFor("fashion-mnist:test", isImage: true));
        Assert.Equal("classifier:mnist", FeatureExtractors.DefaultFor("mnist", isImage: true));
        Assert.Equal("inception-fid", FeatureExtractors.DefaultFor("images:photos/", isImage: true));
        Assert.Equal("raw", FeatureExtractors.DefaultFor("toy:gmm-grid", isImage: false));
        Assert.Equal("raw", FeatureExtractors.DefaultFor("gmm:a.json", isImage: false));
        Assert.Equal("inception-fid", FeatureExtractors.DefaultFor("npy:x.npy", isImage: true));
        Assert.Equal("raw", FeatureExtractors.DefaultFor("npy:x.npy", isImage: false));
        Assert.Equal("raw", FeatureExtractors.DefaultFor("stats.npz", isImage: false));
    }

    [Fact]
    public void Declared_layouts_match_the_loaded_data()
    {
        static void Check(Dataset ds)
        {
            using (ds) Assert.Equal(DataKinds.Find(ds.Spec)!.Layout == DataLayout.Images, ds.IsImage);
        }
        var dir = TestUtil.TempDir("kinds-layout");
        Check(Load("toy:rings?n=10"));
        File.WriteAllText(Path.Combine(dir, "g.json"), """{"weights":[1], "means":[[0,0]], "stds":[0.1]}""");
        Check(Load($"gmm:{dir}/g.json?n=10"));
        if (Directory.Exists(FashionMnist.DefaultDir)) Check(Load("fashion-mnist:test"));
        Assert.Equal(DataLayout.Images, DataKinds.Find("images:DIR")!.Layout);
        Assert.Equal(DataLayout.Images, DataKinds.Find("mnist")!.Layout);
        Assert.Equal(DataLayout.FromFile, DataKinds.Find("npy:FILE")!.Layout);
    }

    [Fact]
    public void The_readme_data_table_has_every_kind()
    {
        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Diffusion.slnx"))) root = root.Parent;
        Assert.NotNull(root);
        string readme = File.ReadAllText(Path.Combine(root.FullName, "README.md"));
        foreach (var k in DataKinds.All) Assert.Contains($"| `{k.Name}", readme);
    }
}
