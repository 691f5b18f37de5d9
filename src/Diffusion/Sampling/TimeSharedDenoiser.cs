using Diffusion.Models;
using Diffusion.Schedules;
using Diffusion.Training;

namespace Diffusion.Sampling;

/// <summary>
/// E-TSDM's time sharing (METHODS.md §3) as the one place it is applied: the network is asked at f(t) instead of
/// t, while the noise level of the step (α, σ) is untouched. <see cref="DenoiserStack"/> puts it into every
/// denoiser of a run trained with time sharing, so the training objective, the consistency chain, every sampler
/// and every diagnostic ask the network the same way, real-valued times included.
/// </summary>
public sealed class TimeSharedDenoiser(IDenoiser inner, TimeSharing sharing) : IDenoiser
{
    public IDenoiser Inner { get; } = inner;
    public TimeSharing Sharing { get; } = sharing;
    public Prediction Prediction => Inner.Prediction;
    public int Classes => Inner.Classes;

    public TorchSharp.torch.Tensor Predict(TorchSharp.torch.Tensor x, TimeStep step) => Predict(x, step, null);

    public TorchSharp.torch.Tensor Predict(TorchSharp.torch.Tensor x, TimeStep step, TorchSharp.torch.Tensor? labels)
    {
        using var ft = Sharing.Map(step.T);
        return Inner.Predict(x, step.WithTime(ft), labels);
    }

    public void Dispose() => Inner.Dispose();
}
