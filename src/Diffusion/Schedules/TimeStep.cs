using TorchSharp;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Schedules;

/// <summary>
/// A time step as a denoiser is asked about it: the network's time input t (real-valued, in the discrete
/// units 0 … T−1 of the schedule it was trained on) together with the noise level of x at that step,
/// α = √ᾱ and σ = √(1 − ᾱ), so that x_t = α·x0 + σ·ε. Only the schedule classes make time steps
/// (<see cref="NoiseSchedule.Step"/>, <see cref="NoiseSchedule.Steps"/>, <see cref="ContinuousVp.Step"/>,
/// <see cref="SigmaView.Step"/>): nothing else derives ᾱ from t.
/// <para>
/// <see cref="T"/> is float64 [N]; <see cref="Alpha"/> and <see cref="Sigma"/> are in x's dtype and broadcast
/// against x (a scalar for a step shared by the batch, [N, 1, …] per example). The tensors belong to the
/// dispose scope they were made in.
/// </para>
/// </summary>
public sealed record TimeStep(Tensor T, Tensor Alpha, Tensor Sigma)
{
    /// <summary>One step for a whole batch like <paramref name="like"/> (its rows, dtype and device).</summary>
    public static TimeStep Uniform(double t, double alpha, double sigma, Tensor like) =>
        new(Full(like.shape[0], t, like.device),
            tensor(alpha, dtype: like.dtype, device: like.device),
            tensor(sigma, dtype: like.dtype, device: like.device));

    private static Tensor Full(long n, double t, Device device)
    {
        using var value = t.ToScalar();
        return full(n, value, dtype: ScalarType.Float64, device: device);
    }

    /// <summary>The same noise level with another time condition (E-TSDM's time sharing changes only what the network is told).</summary>
    public TimeStep WithTime(Tensor t) => this with { T = t };

    /// <summary>The time of the first row (a step shared by the batch has one).</summary>
    public double First => T[0].item<double>();
}
