using Diffusion.Models;
using Diffusion.Training;
using static TorchSharp.torch;

namespace Diffusion.Sampling;

/// <summary>
/// Wraps a denoiser trained with E-TSDM so that every sampler asks it at f(t) instead of t
/// (METHODS.md §3). Samplers keep using the true t for the noise level; only the network's time
/// condition changes. Applied automatically to checkpoints whose config has time sharing on.
/// </summary>
public sealed class TimeSharedDenoiser(IDenoiser inner, TimeSharing sharing) : IDenoiser
{
    public IDenoiser Inner { get; } = inner;
    public TimeSharing Sharing { get; } = sharing;
    public Prediction Prediction => Inner.Prediction;

    public Tensor Predict(Tensor x, Tensor t)
    {
        using var ft = Sharing.Map(t);
        return Inner.Predict(x, ft);
    }
}
