using Diffusion.Data;
using Diffusion.Metrics;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>Loading what eval compares: sample files and folders, data specs, reference subsets.</summary>
public class SampleSetTests
{
    [Fact]
    public void Npy_folders_concatenate_in_name_order_and_n_keeps_the_first()
    {
        var dir = TestUtil.TempDir("sampleset");
        using (var b = full(3, 2, 2f)) Npy.Write(Path.Combine(dir, "b.npy"), b);
        using (var a = full(2, 2, 1f)) Npy.Write(Path.Combine(dir, "a.npy"), a);
        using (var x = SampleSet.Load(dir, null, null, null, 0))
            Assert.Equal(new float[] { 1, 1, 1, 1, 2, 2, 2, 2, 2, 2 }, x.data<float>().ToArray());
        using (var x = SampleSet.Load(dir, 3, null, null, 0)) Assert.Equal(new long[] { 3, 2 }, x.shape);
        using (var c = zeros(2, 3)) Npy.Write(Path.Combine(dir, "c.npy"), c);
        Assert.Contains("c.npy has examples of shape [3]", Assert.Throws<UserError>(() => SampleSet.Load(dir, null, null, null, 0)).Message);

        var other = TestUtil.TempDir("sampleset-files");
        using (var one = zeros(1, 2)) Npy.Write(Path.Combine(other, "one.npy"), one);
        Assert.Contains("need at least two samples", Assert.Throws<UserError>(() => SampleSet.Load(Path.Combine(other, "one.npy"), null, null, null, 0)).Message);
        Assert.Contains("no such file or folder", Assert.Throws<UserError>(() => SampleSet.Load(Path.Combine(dir, "none.npy"), null, null, null, 0)).Message);
        Assert.Null(SampleSet.ImageSize(Path.Combine(dir, "a.npy")));
        using (var img = zeros(2, 1, 12, 12)) Npy.Write(Path.Combine(other, "img.npy"), img);
        Assert.Equal(12, SampleSet.ImageSize(Path.Combine(other, "img.npy")));
    }

    [Fact]
    public void Data_specs_give_seeded_random_subsets_different_for_samples_and_reference()
    {
        using var s1 = SampleSet.Load("toy:moons?n=500", 50, null, null, 3);
        using var s2 = SampleSet.Load("toy:moons?n=500", 50, null, null, 3);
        Assert.True(s1.equal(s2).all().item<bool>());
        using var reference = SampleSet.LoadReference("toy:moons?n=500", null, "not-a-file", 50, 3);
        Assert.Equal(50, reference.Count);
        Assert.False(reference.Data.equal(s1).all().item<bool>(), "samples and reference draw different subsets");
        var all = DataSources.Load(new Config.DataConfig { Spec = "toy:moons?n=40" });
        using var same = SampleSet.Subset(all, 100, 0);
        Assert.Same(all, same);
    }
}
