using static TorchSharp.torch;

namespace Diffusion.Metrics.Features;

/// <summary>The examples themselves, flattened: the feature space for 2-D toy data and other vectors.</summary>
public sealed class RawFeatures : IFeatureExtractor
{
    public string Name => "raw";

    public Tensor Extract(Tensor x, Action<long, long>? progress = null)
    {
        var f = x.detach().cpu().reshape(x.shape[0], -1).to_type(ScalarType.Float32).contiguous();
        progress?.Invoke(x.shape[0], x.shape[0]);
        return f;
    }

    public void Dispose() { }
}
