using Diffusion.Data;

namespace Diffusion.Metrics.Features;

/// <summary>Where extractors find what they need: dataset files, Inception weights, the classifier cache.</summary>
public sealed record FeatureSettings
{
    public string? DataDir { get; init; }
    /// <summary>The FID Inception weights (pytorch-fid's .pth or an .npz); falls back to the DIFFUSION_INCEPTION_WEIGHTS environment variable.</summary>
    public string? InceptionWeights { get; init; }
    public string? ClassifierCache { get; init; }
    public ClassifierOptions Classifier { get; init; } = new();
    public int BatchSize { get; init; } = 32;
    public Action<string>? Log { get; init; }
}

/// <summary>Feature extractors by name: <c>inception-fid</c>, <c>classifier:DATASET</c>, <c>raw</c>.</summary>
public static class FeatureExtractors
{
    public const string Help = "inception-fid, classifier:fashion-mnist, classifier:mnist, raw";
    public const string InceptionEnvironment = "DIFFUSION_INCEPTION_WEIGHTS";

    /// <summary>
    /// The default feature space for a reference data spec, as its kind declares it in <see cref="DataKinds"/>: the
    /// project's classifier for Fashion-MNIST and MNIST, Inception for other images, the vectors themselves otherwise.
    /// </summary>
    public static string DefaultFor(string dataSpec, bool isImage) => DataKinds.DefaultFeatures(dataSpec, isImage);

    public static IFeatureExtractor Create(string name, FeatureSettings settings)
    {
        if (name == "raw") return new RawFeatures();
        if (name == "inception-fid")
        {
            string? path = settings.InceptionWeights ?? Environment.GetEnvironmentVariable(InceptionEnvironment);
            if (string.IsNullOrEmpty(path))
                throw new UserError($"--features inception-fid: no weights; pass --inception-weights FILE (pytorch-fid's pt_inception-2015-12-05-6726825d.pth, or an .npz converted from it as README, Evaluation, shows) or set {InceptionEnvironment}; nothing is downloaded");
            return InceptionFid.Load(path, settings.BatchSize);
        }
        if (name.StartsWith("classifier:", StringComparison.Ordinal))
            return ClassifierFeatures.ForDataset(name["classifier:".Length..], settings.DataDir,
                settings.ClassifierCache ?? ClassifierFeatures.DefaultCacheDir(), settings.Classifier, settings.Log);
        throw new UserError($"--features {name}: unknown feature extractor; expected one of {Help}");
    }
}
