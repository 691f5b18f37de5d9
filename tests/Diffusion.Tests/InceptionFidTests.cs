using Diffusion.Data;
using Diffusion.Metrics.Features;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>
/// The FID Inception against an independent implementation: torchvision's inception_v3 with the FID
/// blocks patched in (tests/tools/inception_reference.py), both filled with the same deterministic
/// weights from a formula of each tensor's name and index, fed the same 64×80 formula image (so the
/// resize to 299 is exercised). The script wrote the expected 2048-d features to
/// Fixtures/inception-fid-reference.npy; regenerate it with
///   /usr/bin/python3 tests/tools/inception_reference.py tests/Diffusion.Tests/Fixtures/inception-fid-reference.npy
/// (Debian's python3-torch and python3-torchvision; not needed to run this test).
/// </summary>
public class InceptionFidTests
{
    private static string Fixture => Path.Combine(AppContext.BaseDirectory, "Fixtures", "inception-fid-reference.npy");

    // The formula of inception_reference.py: FNV-1a 64 of the name, splitmix64 of (hash + (i+1)·golden), u = top 53 bits.
    private static ulong Fnv1a64(string s)
    {
        ulong h = 0xCBF29CE484222325;
        foreach (var b in System.Text.Encoding.UTF8.GetBytes(s)) { h ^= b; h = unchecked(h * 0x100000001B3); }
        return h;
    }

    internal static double[] Uniform(string name, long n)
    {
        ulong h = Fnv1a64(name);
        var u = new double[n];
        for (long i = 0; i < n; i++)
        {
            ulong z = unchecked(h + (ulong)(i + 1) * 0x9E3779B97F4A7C15);
            z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9);
            z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EB);
            z ^= z >> 31;
            u[i] = (z >> 11) * (1.0 / (1UL << 53));
        }
        return u;
    }

    private static float[] Formula(string name, long[] shape)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        var u = Uniform(name, n);
        var r = new float[n];
        if (name.EndsWith("conv.weight"))
        {
            double bound = Math.Sqrt(6.0 / (shape[1] * shape[2] * shape[3]));
            for (long i = 0; i < n; i++) r[i] = (float)((2 * u[i] - 1) * bound);
        }
        else if (name.EndsWith("bn.weight")) for (long i = 0; i < n; i++) r[i] = (float)(0.75 + 0.5 * u[i]);
        else if (name.EndsWith("bn.bias")) for (long i = 0; i < n; i++) r[i] = (float)(0.2 * (2 * u[i] - 1));
        else if (name.EndsWith("running_mean")) for (long i = 0; i < n; i++) r[i] = (float)(0.1 * (2 * u[i] - 1));
        else if (name.EndsWith("running_var")) for (long i = 0; i < n; i++) r[i] = (float)(0.5 + u[i]);
        else throw new InvalidOperationException("no formula for " + name);
        return r;
    }

    /// <summary>The network with the formula weights (built once: 24 M values).</summary>
    private static readonly Lazy<InceptionFidNetwork> Shared = new(() => FormulaNetwork());

    internal static InceptionFidNetwork FormulaNetwork(bool plainPooling = false)
    {
        var net = new InceptionFidNetwork(plainPooling);
        using var _ = no_grad();
        foreach (var (name, t) in net.NamedTensors())
        {
            using var v = tensor(Formula(name, t.shape), t.shape);
            t.copy_(v);
        }
        return net;
    }

    private static Tensor FormulaImage() =>
        tensor(Uniform("input", 2 * 3 * 64 * 80).Select(v => (float)(2 * v - 1)).ToArray(), [2, 3, 64, 80]);

    [Fact]
    public void Features_match_torchvision_with_the_fid_blocks_on_shared_weights()
    {
        using var expected = Npy.Read(Fixture);
        Assert.Equal(new long[] { 2, 2048 }, expected.shape);
        var net = Shared.Value;
        Assert.Equal(94 * 5, net.NamedTensors().Count()); // 94 BasicConv blocks: conv weight + 4 BatchNorm tensors each
        var extractor = new InceptionFid(net);
        using var x = FormulaImage();
        using var f = extractor.Extract(x);
        Assert.Equal(new long[] { 2, 2048 }, f.shape);
        double rel = (f - expected).norm().item<float>() / expected.norm().item<float>();
        double maxAbs = (f - expected).abs().max().item<float>();
        Assert.True(rel < 1e-5, $"relative L2 difference {rel:G3} (max abs {maxAbs:G3})");
        // The features differ between the two images and are not degenerate.
        Assert.True((f[0] - f[1]).norm().item<float>() > 0.01 * f[0].norm().item<float>());


        // torchvision's plain blocks (padding counted in the average pools, no max pool in Mixed_7c) on the same
        // weights give clearly different features: the comparison above can tell the FID blocks from them (first image only).
        using var plainNet = new InceptionFidNetwork(plainPooling: true);
        using (no_grad())
            foreach (var ((_, dst), (_, src)) in plainNet.NamedTensors().Zip(net.NamedTensors())) dst.copy_(src);
        using var plain = new InceptionFid(plainNet).Extract(x.narrow(0, 0, 1));
        double plainRel = (plain[0] - expected[0]).norm().item<float>() / expected[0].norm().item<float>();
        Assert.True(plainRel > 1000 * rel && plainRel > 1e-3, $"plain blocks differ by {plainRel:G3} only");
    }

    [Fact]
    public void Gray_images_are_repeated_to_three_channels()
    {
        using var g = new Generator(1);
        using var gray = rand([1, 1, 20, 24], generator: g) * 2 - 1;
        using var a = InceptionFid.Preprocess(gray);
        using var b = InceptionFid.Preprocess(gray.expand(-1, 3, -1, -1));
        Assert.Equal(new long[] { 1, 3, 299, 299 }, a.shape);
        Assert.True(a.equal(b).all().item<bool>());
    }

    [Fact]
    public void Weights_load_from_an_npz_by_state_dict_name_and_bad_files_are_one_line_errors()
    {
        var dir = TestUtil.TempDir("inception-npz");
        var named = Shared.Value.NamedTensors().ToList();
        // As the README's conversion writes it: every state-dict tensor, plus fc (1008 classes) and num_batches_tracked.
        using var fcW = zeros(1008, 2048);
        using var fcB = zeros(1008);
        using var nbt = zeros(1, dtype: ScalarType.Float32);
        var path = Path.Combine(dir, "fid.npz");
        Npz.Write(path, named.Append(("fc.weight", fcW)).Append(("fc.bias", fcB)).Append(("Mixed_5b.branch1x1.bn.num_batches_tracked", nbt)));
        using (var loaded = InceptionFid.Load(path))
            foreach (var ((name, a), (_, b)) in named.Zip(loaded.Network.NamedTensors()))
                Assert.True(a.equal(b).all().item<bool>(), name);

        // Small files suffice for the errors: the checks run in the network's order and stop at the first problem.
        var missing = Path.Combine(dir, "missing.npz");
        Npz.Write(missing, named.Skip(1).Take(3));
        Assert.Contains($"missing tensor '{named[0].Name}'", Assert.Throws<UserError>(() => InceptionFid.Load(missing)).Message);

        using var fc1000 = zeros(1000, 2048);
        var imagenet = Path.Combine(dir, "imagenet.npz");
        Npz.Write(imagenet, [("fc.weight", fc1000)]);
        Assert.Contains("1008", Assert.Throws<UserError>(() => InceptionFid.Load(imagenet)).Message);

        var wrongShape = Path.Combine(dir, "shape.npz");
        using var small = zeros(3);
        Npz.Write(wrongShape, [(named[0].Name, small)]);
        Assert.Contains($"'{named[0].Name}' has shape [3]", Assert.Throws<UserError>(() => InceptionFid.Load(wrongShape)).Message);

        var unexpected = Path.Combine(dir, "unexpected.npz");
        Npz.Write(unexpected, [("Mixed_8a.conv.weight", small)]);
        Assert.Contains("unexpected tensor 'Mixed_8a.conv.weight'", Assert.Throws<UserError>(() => InceptionFid.Load(unexpected)).Message);

        Assert.Contains("file not found", Assert.Throws<UserError>(() => InceptionFid.Load(Path.Combine(dir, "none.npz"))).Message);
        File.WriteAllText(Path.Combine(dir, "junk.npz"), "not a zip");
        Assert.Contains("not a readable .npz", Assert.Throws<UserError>(() => InceptionFid.Load(Path.Combine(dir, "junk.npz"))).Message);
    }
    [Fact]
    public void Weights_load_from_pytorch_fids_pth_state_dict_and_give_the_same_features()
    {
        var dir = TestUtil.TempDir("inception-pth");
        var net = Shared.Value;
        // As pytorch-fid's pt_inception-2015-12-05-6726825d.pth holds them: torchvision's state-dict names, the 1008-class
        // classifier and BatchNorm's num_batches_tracked (int64), written in PyTorch's torch.save format by PyBridge.
        using var fcW = full(1008, 2048, 0.01f);
        using var fcB = zeros(1008);
        using var nbt = tensor(7L);
        var table = new System.Collections.Hashtable();
        foreach (var (name, t) in net.NamedTensors()) table[name] = t;
        table["fc.weight"] = fcW;
        table["fc.bias"] = fcB;
        table["Conv2d_1a_3x3.bn.num_batches_tracked"] = nbt;
        var path = Path.Combine(dir, "pt_inception-2015-12-05-6726825d.pth");
        TorchSharp.PyBridge.PyTorchPickler.PickleStateDict(path, table);
        Assert.True(Diffusion.IO.StateDictFiles.IsPyTorchFile(path));

        using var loaded = InceptionFid.Load(path);
        foreach (var ((name, a), (_, b)) in net.NamedTensors().Zip(loaded.Network.NamedTensors()))
            Assert.True(a.equal(b).all().item<bool>(), name);
        using var x = FormulaImage();
        using var one = x.narrow(0, 0, 1);
        using var expected = new InceptionFid(net).Extract(one);
        using var got = loaded.Extract(one);
        Assert.True(got.equal(expected).all().item<bool>(), "features differ after the .pth round trip");

        // A wrong file is a one-line error naming it: a legacy torch.save container cut after its magic number (whole
        // legacy files are read: LegacyPthTests), a broken pickle, a wrong network.
        var legacy = Path.Combine(dir, "legacy.pth");
        File.WriteAllBytes(legacy, [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]);
        var e = Assert.Throws<UserError>(() => InceptionFid.Load(legacy));
        Assert.Contains("legacy", e.Message);
        Assert.StartsWith(legacy, e.Message);

        var broken = Path.Combine(dir, "broken.pth");
        using (var zip = System.IO.Compression.ZipFile.Open(broken, System.IO.Compression.ZipArchiveMode.Create))
        using (var w = new StreamWriter(zip.CreateEntry("archive/data.pkl").Open())) w.Write("not a pickle");
        e = Assert.Throws<UserError>(() => InceptionFid.Load(broken));
        Assert.Contains("not a readable PyTorch state dict", e.Message);
        Assert.DoesNotContain('\n', e.Message);

        var imagenet = Path.Combine(dir, "inception_v3_google.pth");
        using var fc1000 = zeros(1000, 2048);
        TorchSharp.PyBridge.PyTorchPickler.PickleStateDict(imagenet, new System.Collections.Hashtable { ["fc.weight"] = fc1000 });
        Assert.Contains("1008", Assert.Throws<UserError>(() => InceptionFid.Load(imagenet)).Message);
    }
}
