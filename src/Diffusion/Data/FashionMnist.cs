namespace Diffusion.Data;

/// <summary>
/// <c>fashion-mnist</c> (the training split; <c>fashion-mnist:test</c> for the test split): the gzipped
/// IDX files of the Debian package dataset-fashion-mnist in <see cref="DefaultDir"/>, or in data.data-dir.
/// </summary>
public static class FashionMnist
{
    public const string DefaultDir = "/usr/share/datasets/fashion-mnist";

    /// <summary>The names of the ten classes, label 0 … 9 (from the dataset's documentation).</summary>
    public static readonly IReadOnlyList<string> ClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    public static Dataset FromSpec(DataRequest request)
    {
        var (spec, arg, cfg) = request;
        string split = arg switch
        {
            "" or "train" => "train",
            "test" => "t10k",
            _ => throw new UserError($"{spec}: unknown split '{arg}'; expected fashion-mnist, fashion-mnist:train or fashion-mnist:test"),
        };
        string dir = cfg.DataDir ?? DefaultDir;
        if (!Directory.Exists(dir))
            throw new UserError(cfg.DataDir is null
                ? $"{spec}: {DefaultDir} not found; run make setup (installs the Debian package dataset-fashion-mnist) or pass --data-dir DIR"
                : $"{spec}: --data-dir {dir} not found");
        return Idx.LoadSplit(spec, dir, split, ClassNames);
    }
}
