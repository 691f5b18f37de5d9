using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;

namespace Diffusion.Diagnostics;

/// <summary>
/// Wraps the denoiser a sampler calls and records what the reverse chain looks like at each visited
/// step: the input x_t (kept at the steps asked for) and the per-example squared norm of the model's ε
/// prediction divided by the dimension, ‖ε̂(x_t, t)‖²/D. Samplers stay unchanged: they call
/// <see cref="Predict"/> once per step with the original time of the step.
/// </summary>
public sealed class ChainRecorder(IDenoiser inner, NoiseSchedule schedule, ISet<int>? keepStatesAt = null) : IDenoiser, IDisposable
{
    public Prediction Prediction => inner.Prediction;

    /// <summary>Per visited step (original time t): ‖ε̂‖²/D of every example.</summary>
    public SortedDictionary<int, double[]> EpsNorms { get; } = new();
    /// <summary>Chain states x_t (copies, float32) at the steps in keepStatesAt.</summary>
    public SortedDictionary<int, Tensor> States { get; } = new();

    public Tensor Predict(Tensor x, Tensor t)
    {
        var output = inner.Predict(x, t);
        using var scope = NewDisposeScope();
        int step = (int)Math.Round(t[0].to_type(ScalarType.Float64).item<double>());
        double ab = schedule.AlphasCumprod[Math.Clamp(step, 0, schedule.T - 1)];
        var alpha = tensor(Math.Sqrt(ab), dtype: x.dtype);
        var sigma = tensor(Math.Sqrt(1 - ab), dtype: x.dtype);
        var (eps, _) = Parameterization.EpsAndX0(inner.Prediction, output, x, alpha, sigma);
        long d = x.numel() / x.shape[0];
        var norms = eps.reshape(x.shape[0], -1).to_type(ScalarType.Float64).pow(2).sum(1) / d;
        var values = norms.data<double>().ToArray();
        EpsNorms[step] = EpsNorms.TryGetValue(step, out var before) ? before.Concat(values).ToArray() : values;
        if (keepStatesAt?.Contains(step) == true)
        {
            var copy = x.detach().to_type(ScalarType.Float32).clone().DetachFromDisposeScope();
            if (States.TryGetValue(step, out var old)) { States[step] = cat([old, copy], 0).DetachFromDisposeScope(); old.Dispose(); copy.Dispose(); }
            else States[step] = copy;
        }
        return output;
    }

    public void Dispose()
    {
        foreach (var s in States.Values) s.Dispose();
        States.Clear();
    }
}
