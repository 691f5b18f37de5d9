using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Diagnostics;

/// <summary>
/// Wraps the denoiser a sampler calls and records what the reverse chain looks like at each visited
/// step: the input x_t (kept at the steps asked for) and the per-example squared norm of the model's ε
/// prediction divided by the dimension, ‖ε̂(x_t, t)‖²/D, with ε̂ formed at the noise level of the step it is
/// asked at. Samplers stay unchanged: the discrete chains the diagnostics run (DDPM, DDIM) call <see cref="Predict"/>
/// once per step at the step's original (integer) time, which keys the records; a real-valued time is refused
/// rather than rounded. The recorder does not own <paramref name="inner"/>.
/// </summary>
public sealed class ChainRecorder(IDenoiser inner, ISet<int>? keepStatesAt = null) : IDenoiser
{
    public Prediction Prediction => inner.Prediction;

    /// <summary>Per visited step (original time t): ‖ε̂‖²/D of every example.</summary>
    public SortedDictionary<int, double[]> EpsNorms { get; } = new();
    /// <summary>Chain states x_t (copies, float32) at the steps in keepStatesAt.</summary>
    public SortedDictionary<int, Tensor> States { get; } = new();

    public Tensor Predict(Tensor x, TimeStep timeStep)
    {
        var output = inner.Predict(x, timeStep);
        using var scope = NewDisposeScope();
        double t = timeStep.First;
        if (t != Math.Floor(t)) throw new ArgumentException($"the chain recorder keys its records by integer steps; the sampler asked at t = {t}");
        int step = (int)t;
        var (eps, _) = Parameterization.EpsAndX0(inner.Prediction, output, x, timeStep.Alpha, timeStep.Sigma);
        long d = x.numel() / x.shape[0];
        var norms = eps.reshape(x.shape[0], -1).to_type(ScalarType.Float64).Pow(2L).sum(1).Div(d);
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
