namespace Diffusion.Data;

/// <summary>
/// The registry of data kinds. Each kind is declared here once — name, forms, loader, layout, default
/// config, held-out data, default features — and everything that knows about kinds reads it: loading
/// (<see cref="DataSources"/>), <c>diffusion train --data</c>'s default config and help,
/// <c>diffusion eval</c>'s data specs and default features, the diagnostics' held-out data. A new kind is
/// one entry here plus its loader.
/// </summary>
public static class DataKinds
{
    public static readonly IReadOnlyList<DataKind> All =
    [
        new DataKind
        {
            Name = "toy", Forms = Toy2D.Names.Select(n => "toy:" + n).ToArray(), Load = Toy2D.FromSpec,
            Layout = DataLayout.Vectors, DefaultConfig = _ => "toy", HeldOut = Reseeded, Features = "raw",
        },
        new DataKind
        {
            Name = "gmm", Forms = ["gmm:SPEC.json"], Load = MixtureData.FromSpec,
            Layout = DataLayout.Vectors, DefaultConfig = _ => "toy", HeldOut = Reseeded, Features = "raw",
        },
        new DataKind
        {
            Name = "fashion-mnist", Forms = ["fashion-mnist[:test]"], Load = FashionMnist.FromSpec,
            Layout = DataLayout.Images, DefaultConfig = _ => "image28", HeldOut = _ => "fashion-mnist:test", Features = "classifier:fashion-mnist",
        },
        new DataKind
        {
            Name = "mnist", Forms = ["mnist"], Load = MnistJson.FromSpec,
            Layout = DataLayout.Images, DefaultConfig = _ => "image28", Features = "classifier:mnist",
        },
        new DataKind
        {
            Name = "images", Forms = ["images:DIR"], Load = ImageFolder.FromSpec,
            Layout = DataLayout.Images, DefaultConfig = _ => "image32", Features = "inception-fid",
        },
        new DataKind
        {
            Name = "npy", Forms = ["npy:FILE[?labels=LABELS.npy]"], Load = Npy.FromSpec,
            Layout = DataLayout.FromFile, DefaultConfig = ConfigForNpy,
        },
    ];

    /// <summary>Every form, as help and error messages list them: "toy:gmm-grid, toy:moons, …, npy:FILE".</summary>
    public static string Help => string.Join(", ", All.SelectMany(k => k.Forms));

    /// <summary>The kind of a spec ("kind:arg" or a bare kind name); null when no kind has that name.</summary>
    public static DataKind? Find(string spec)
    {
        var (kind, _) = DataSources.Split(spec);
        return All.FirstOrDefault(k => k.Name == kind);
    }

    /// <summary>Whether a string names one of the kinds (decides without loading anything).</summary>
    public static bool IsDataSpec(string s) => Find(s) is not null;

    /// <summary>The built-in config for training on a spec: toy (MLP) for vectors, image28 or image32 (UNet) for images; toy for an unknown kind, which loading then reports.</summary>
    public static string DefaultConfigName(string spec)
    {
        var (_, arg) = DataSources.Split(spec);
        return Find(spec)?.DefaultConfig(arg) ?? "toy";
    }

    /// <summary>The held-out counterpart of a training spec: fashion-mnist → fashion-mnist:test; toy sets and gmm: with another seed; otherwise the spec itself.</summary>
    public static string HeldOutSpec(string trainSpec) => Find(trainSpec)?.HeldOut?.Invoke(trainSpec) ?? trainSpec;

    /// <summary>The default feature space for a reference: the kind's own, else inception-fid for images and raw for vectors.</summary>
    public static string DefaultFeatures(string spec, bool isImage) => Find(spec)?.Features ?? (isImage ? "inception-fid" : "raw");

    // toy and gmm sets are draws with a seed: the held-out set is another draw (seed 9001), other options kept.
    private static string Reseeded(string spec)
    {
        var (kind, arg) = DataSources.Split(spec);
        var (name, opts) = DataSources.Options(arg);
        opts.Remove("seed");
        return $"{kind}:{name}?{string.Join('&', opts.Select(kv => $"{kv.Key}={kv.Value}").Append("seed=9001"))}";
    }

    // An .npy array decides by its shape: N×C×H×W images up to 28 pixels image28, larger image32, vectors toy.
    private static string ConfigForNpy(string arg)
    {
        var shape = Npy.ReadShape(DataSources.Options(arg).Name);
        if (shape.Length == 4) return shape[2] <= 28 ? "image28" : "image32";
        return "toy";
    }
}
