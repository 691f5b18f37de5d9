using static TorchSharp.torch;

namespace Diffusion.Models;

/// <summary>What a denoiser's output means.</summary>
public enum Prediction
{
    /// <summary>The noise ε in x_t = √ᾱ·x0 + √(1−ᾱ)·ε.</summary>
    Epsilon,
    /// <summary>The clean data x0.</summary>
    X0,
    /// <summary>v = √ᾱ·ε − √(1−ᾱ)·x0.</summary>
    V,
}

/// <summary>
/// The one interface samplers see: given x and a (possibly non-integer) time in the network's
/// discrete units (0 … T−1), return the model's prediction. Anything that changes what the network
/// is asked (time sharing, fresh SMD latents, epsilon scaling) wraps an <see cref="IDenoiser"/>.
/// </summary>
public interface IDenoiser
{
    Prediction Prediction { get; }

    /// <summary>The raw prediction for x (shape [N, …]) at times t (shape [N]); same dtype as x.</summary>
    Tensor Predict(Tensor x, Tensor t);
}

/// <summary>Conversions between ε, x0 and v predictions given α = √ᾱ and σ = √(1−ᾱ) (tensors broadcastable to x).</summary>
public static class Parameterization
{
    public static Prediction Parse(string name) => name switch
    {
        "eps" => Prediction.Epsilon,
        "x0" => Prediction.X0,
        "v" => Prediction.V,
        _ => throw new UserError($"prediction '{name}': expected eps, x0 or v"),
    };

    public static string Name(Prediction p) => p switch { Prediction.Epsilon => "eps", Prediction.X0 => "x0", _ => "v" };

    /// <summary>x_t = α·x0 + σ·ε.</summary>
    public static Tensor QSample(Tensor x0, Tensor eps, Tensor alpha, Tensor sigma) => alpha * x0 + sigma * eps;

    public static Tensor X0FromEps(Tensor xt, Tensor eps, Tensor alpha, Tensor sigma) => (xt - sigma * eps) / alpha;
    public static Tensor EpsFromX0(Tensor xt, Tensor x0, Tensor alpha, Tensor sigma) => (xt - alpha * x0) / sigma;
    public static Tensor V(Tensor x0, Tensor eps, Tensor alpha, Tensor sigma) => alpha * eps - sigma * x0;
    /// <summary>x0 = α·x_t − σ·v (uses α² + σ² = 1).</summary>
    public static Tensor X0FromV(Tensor xt, Tensor v, Tensor alpha, Tensor sigma) => alpha * xt - sigma * v;
    /// <summary>ε = σ·x_t + α·v (uses α² + σ² = 1).</summary>
    public static Tensor EpsFromV(Tensor xt, Tensor v, Tensor alpha, Tensor sigma) => sigma * xt + alpha * v;

    /// <summary>(ε̂, x̂0) from a raw prediction of kind <paramref name="kind"/>.</summary>
    public static (Tensor Eps, Tensor X0) EpsAndX0(Prediction kind, Tensor output, Tensor xt, Tensor alpha, Tensor sigma) => kind switch
    {
        Prediction.Epsilon => (output.alias(), X0FromEps(xt, output, alpha, sigma)),
        Prediction.X0 => (EpsFromX0(xt, output, alpha, sigma), output.alias()),
        _ => (EpsFromV(xt, output, alpha, sigma), X0FromV(xt, output, alpha, sigma)),
    };

    /// <summary>The training target of kind <paramref name="kind"/> for a draw (x0, ε).</summary>
    public static Tensor Target(Prediction kind, Tensor x0, Tensor eps, Tensor alpha, Tensor sigma) => kind switch
    {
        Prediction.Epsilon => eps.alias(),
        Prediction.X0 => x0.alias(),
        _ => V(x0, eps, alpha, sigma),
    };
}

public static class DenoiserExtensions
{
    /// <summary>(ε̂, x̂0) at noise level (α, σ) whatever the denoiser predicts.</summary>
    public static (Tensor Eps, Tensor X0) EpsAndX0(this IDenoiser d, Tensor x, Tensor t, Tensor alpha, Tensor sigma)
    {
        using var output = d.Predict(x, t);
        return Parameterization.EpsAndX0(d.Prediction, output, x, alpha, sigma);
    }
}

/// <summary>A trainable network f(x, t) with real-valued t: the UNet or the MLP.</summary>
public abstract class DenoiserNetwork(string name) : nn.Module<Tensor, Tensor, Tensor>(name)
{
    /// <summary>Shape of one example, e.g. [1, 28, 28] or [2].</summary>
    public abstract long[] ExampleShape { get; }

    /// <summary>The forward pass conditioned on a latent z through hypernetwork layers (soft mixture denoising).</summary>
    public virtual Tensor ForwardWithLatent(Tensor x, Tensor t, Tensor? z) =>
        z is null ? forward(x, t) : throw new NotSupportedException($"{GetType().Name} cannot be conditioned on a latent");
}

/// <summary>Adapts a float32 network to <see cref="IDenoiser"/>: casts x and t in, the output back to x's dtype.</summary>
public sealed class NetworkDenoiser(DenoiserNetwork network, Prediction prediction) : IDenoiser
{
    public DenoiserNetwork Network { get; } = network;
    public Prediction Prediction { get; } = prediction;

    public Tensor Predict(Tensor x, Tensor t)
    {
        if (x.dtype == ScalarType.Float32) return Network.call(x, t.to_type(ScalarType.Float32));
        using var xf = x.to_type(ScalarType.Float32);
        using var tf = t.to_type(ScalarType.Float32);
        using var y = Network.call(xf, tf);
        return y.to_type(x.dtype);
    }
}
