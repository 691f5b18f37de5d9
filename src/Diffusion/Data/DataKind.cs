using Diffusion.Config;

namespace Diffusion.Data;

/// <summary>What a kind's examples are: vectors, images, or whichever the file holds.</summary>
public enum DataLayout { Vectors, Images, FromFile }

/// <summary>A data spec to load: the whole spec (for messages), the part after "kind:", and the data config (data-dir, image size, channels).</summary>
public sealed record DataRequest(string Spec, string Arg, DataConfig Config);

/// <summary>
/// One kind of data spec (<c>kind</c> or <c>kind:arg</c>), declared once in <see cref="DataKinds"/>:
/// its name and the forms help shows, its loader, and the defaults the commands take from it.
/// </summary>
public sealed record DataKind
{
    /// <summary>The part of a spec before ':' (the whole spec when it has none).</summary>
    public required string Name { get; init; }
    /// <summary>The spec's forms as help and errors list them, e.g. <c>toy:moons</c>, <c>images:DIR</c>.</summary>
    public required IReadOnlyList<string> Forms { get; init; }
    public required Func<DataRequest, Dataset> Load { get; init; }
    public required DataLayout Layout { get; init; }
    /// <summary>The built-in config <c>diffusion train --data</c> starts from, given the part after ':' (npy: from the file's shape).</summary>
    public required Func<string, string> DefaultConfig { get; init; }
    /// <summary>
    /// The held-out counterpart of a training spec (diagnostics draw from it); null when the kind has
    /// none, and the training data itself serves.
    /// </summary>
    public Func<string, string>? HeldOut { get; init; }
    /// <summary>The feature extractor eval uses for it by default; null: by the loaded data, inception-fid for images, raw for vectors.</summary>
    public string? Features { get; init; }
}
