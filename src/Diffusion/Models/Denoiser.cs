using TorchSharp;
using Diffusion.Schedules;
using static TorchSharp.torch;
using Diffusion.Util;

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
/// The one interface the objective, the consistency chain, every sampler and every diagnostic see: given x and a
/// <see cref="TimeStep"/> (the network's real-valued time together with the noise level α, σ of x), return the
/// model's prediction. Anything that changes what the network is asked (SMD's fresh η, E-TSDM's time sharing,
/// epsilon scaling, classifier-free guidance) is a wrapper around an <see cref="IDenoiser"/>, built once by
/// <see cref="Sampling.DenoiserStack"/>. A denoiser that owns resources (a generator) releases them on <see cref="IDisposable.Dispose"/>.
/// <para>
/// A class-conditional denoiser (<see cref="Classes"/> = K &gt; 0) is also asked with labels: one class 0 … K−1 per
/// row, or K, the null class (the unconditional model of classifier-free guidance). Asked without labels, it is
/// the null class for every row, so diagnostics and any caller that knows no classes see the unconditional model.
/// </para>
/// </summary>
public interface IDenoiser : IDisposable
{
    Prediction Prediction { get; }

    /// <summary>The raw prediction for x (shape [N, …]) at <paramref name="step"/>; same dtype as x.</summary>
    Tensor Predict(Tensor x, TimeStep step);

    /// <summary>Number of classes K of a class-conditional denoiser (label K is the null class); 0 when it is not conditional.</summary>
    int Classes => 0;

    /// <summary>
    /// The prediction for rows of classes <paramref name="labels"/> (int64 [N], 0 … K with K the null class); null
    /// labels are <see cref="Predict(Tensor, TimeStep)"/>. A denoiser that is not conditional accepts only null.
    /// </summary>
    Tensor Predict(Tensor x, TimeStep step, Tensor? labels) =>
        labels is null ? Predict(x, step) : throw new InvalidOperationException($"{GetType().Name} is not class-conditional; it takes no labels");

    void IDisposable.Dispose() { }
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
    public static Tensor QSample(Tensor x0, Tensor eps, Tensor alpha, Tensor sigma) => (alpha * x0).Add(sigma * eps);

    public static Tensor X0FromEps(Tensor xt, Tensor eps, Tensor alpha, Tensor sigma) => (xt - sigma * eps) / alpha;
    public static Tensor EpsFromX0(Tensor xt, Tensor x0, Tensor alpha, Tensor sigma) => (xt - alpha * x0) / sigma;
    public static Tensor V(Tensor x0, Tensor eps, Tensor alpha, Tensor sigma) => alpha * eps - sigma * x0;
    /// <summary>x0 = α·x_t − σ·v (uses α² + σ² = 1).</summary>
    public static Tensor X0FromV(Tensor xt, Tensor v, Tensor alpha, Tensor sigma) => alpha * xt - sigma * v;
    /// <summary>ε = σ·x_t + α·v (uses α² + σ² = 1).</summary>
    public static Tensor EpsFromV(Tensor xt, Tensor v, Tensor alpha, Tensor sigma) => (sigma * xt).Add(alpha * v);

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
    public static (Tensor Eps, Tensor X0) EpsAndX0(this IDenoiser d, Tensor x, TimeStep step)
    {
        using var output = d.Predict(x, step);
        return Parameterization.EpsAndX0(d.Prediction, output, x, step.Alpha, step.Sigma);
    }

    /// <summary>(ε̂, x̂0) for rows of classes <paramref name="labels"/> (null: <see cref="EpsAndX0(IDenoiser, Tensor, TimeStep)"/>).</summary>
    public static (Tensor Eps, Tensor X0) EpsAndX0(this IDenoiser d, Tensor x, TimeStep step, Tensor? labels)
    {
        using var output = d.Predict(x, step, labels);
        return Parameterization.EpsAndX0(d.Prediction, output, x, step.Alpha, step.Sigma);
    }

    /// <summary>ε̂ at <paramref name="step"/> whatever the denoiser predicts.</summary>
    public static Tensor Eps(this IDenoiser d, Tensor x, TimeStep step)
    {
        var (eps, x0) = d.EpsAndX0(x, step);
        x0.Dispose();
        return eps;
    }
}

/// <summary>A trainable network f(x, t) with real-valued t: the UNet or the MLP.</summary>
public abstract class DenoiserNetwork(string name) : nn.Module<Tensor, Tensor, Tensor>(name)
{
    /// <summary>Shape of one example, e.g. [1, 28, 28] or [2].</summary>
    public abstract long[] ExampleShape { get; }

    /// <summary>
    /// The forward pass conditioned on a latent z through hypernetwork layers (soft mixture denoising) and, for a
    /// class-conditional network, on class labels (int64 [N]; null: the null class for every row).
    /// </summary>
    public virtual Tensor ForwardWithLatent(Tensor x, Tensor t, Tensor? z, Tensor? labels = null) =>
        z is null && labels is null ? forward(x, t) : throw new NotSupportedException($"{GetType().Name} cannot be conditioned on a latent or a class");

    /// <summary>
    /// The arithmetic of the network's passes when called through a <see cref="NetworkDenoiser"/> (which enters the
    /// <see cref="Autocast"/> scope); the weights are float32 either way. Not saved with the weights: the run's config
    /// says it (train.precision, sample --precision).
    /// </summary>
    public Precision Precision { get; set; } = Precision.Float32;

    /// <summary>Whether the network needs a noise input η of x's shape besides (x, t) (soft mixture denoising).</summary>
    public virtual bool TakesNoise => false;

    /// <summary>The forward pass with the noise input η (networks that <see cref="TakesNoise"/>), and class labels when conditional.</summary>
    public virtual Tensor ForwardWithNoise(Tensor x, Tensor t, Tensor eta, Tensor? labels = null) =>
        throw new NotSupportedException($"{GetType().Name} takes no noise input");

    /// <summary>Number of classes K of a class-conditional network (its embedding has K + 1 rows, the last the null class); 0 when unconditional.</summary>
    public virtual int NumClasses => 0;

    /// <summary>
    /// The time embedding plus the class embedding of <paramref name="labels"/> (the null class K for every row when
    /// null) — how a conditional network is told the class; <paramref name="emb"/> itself when <paramref name="table"/> is null.
    /// </summary>
    protected static Tensor AddClassEmbedding(Tensor emb, nn.Module<Tensor, Tensor>? table, int numClasses, Tensor? labels)
    {
        if (table is null)
        {
            if (labels is not null) throw new InvalidOperationException("this network is not class-conditional; it takes no labels");
            return emb;
        }
        using var nullClass = numClasses.ToScalar();
        using var nulls = labels is null ? full(emb.shape[0], nullClass, dtype: ScalarType.Int64, device: emb.device) : null;
        using var c = table.call(labels ?? nulls!);
        using var cast = c.to_type(emb.dtype);
        return emb.Add(cast);
    }
}

/// <summary>
/// Adapts a float32 network to <see cref="IDenoiser"/>: casts x and the step's time in, the output back to x's dtype.
/// For a network that <see cref="DenoiserNetwork.TakesNoise"/> (SMD), η ~ N(0, I) of x's shape is drawn from
/// <paramref name="noise"/> at every call: one η per example in training, a fresh η at every sampler step (from each
/// sample's own generator when the source is per sample). A source given with <paramref name="ownsNoise"/> is disposed with the denoiser.
/// With <paramref name="fixedRows"/> &gt; 0 the network is always called on exactly that many rows (the batch is cut into
/// blocks, the last padded with zeros): a row's output is then the same whatever the batch it came in, which float32
/// matrix products do not promise on their own (libtorch's CPU GEMM takes other paths for small row counts, e.g. one row).
/// A class-conditional network is told the labels it is asked with (the null class without).
/// </summary>
public sealed class NetworkDenoiser(DenoiserNetwork network, Prediction prediction, Sampling.NoiseSource? noise = null, bool ownsNoise = false,
                                    int fixedRows = 0) : IDenoiser
{
    /// <summary>
    /// The block size split-invariant sampling calls the network with: a multiple of the 16 float32 lanes of AVX-512, and
    /// large enough that a block costs little more per row than a whole batch (README, More than one machine: 16 rows
    /// drew 560 evaluations/s of the demo UNet, 128 rows 770).
    /// </summary>
    public const int InvariantBlock = 128;

    public DenoiserNetwork Network { get; } = network;
    public Prediction Prediction { get; } = prediction;
    public int Classes => Network.NumClasses;

    public Tensor Predict(Tensor x, TimeStep step) => Predict(x, step, null);

    public Tensor Predict(Tensor x, TimeStep step, Tensor? labels)
    {
        if (labels is not null && Network.NumClasses == 0) throw new InvalidOperationException($"{Network.GetType().Name} is not class-conditional; it takes no labels");
        if (x.dtype == ScalarType.Float32) return Call(x, step.T, labels);
        using var xf = x.to_type(ScalarType.Float32);
        using var y = Call(xf, step.T, labels);
        return y.to_type(x.dtype);
    }

    private Tensor Call(Tensor x, Tensor t, Tensor? labels)
    {
        using var mixed = Autocast.Enter(Network.Precision);
        using var tf = t.to_type(ScalarType.Float32);
        if (!Network.TakesNoise) return fixedRows > 0 ? Blocked(x, tf, null, labels) : Forward(x, tf, null, labels);
        if (noise is null) throw new InvalidOperationException($"{Network.GetType().Name} needs a generator for its noise input η; build the denoiser with DenoiserStack");
        using var eta = noise.Randn(x.shape, x.dtype, x.device);
        return fixedRows > 0 ? Blocked(x, tf, eta, labels) : Forward(x, tf, eta, labels);
    }

    private Tensor Forward(Tensor x, Tensor t, Tensor? eta, Tensor? labels) =>
        eta is not null ? Network.ForwardWithNoise(x, t, eta, labels)
        : Network.NumClasses == 0 ? Network.call(x, t) : Network.ForwardWithLatent(x, t, null, labels);

    /// <summary>The network over blocks of exactly <c>fixedRows</c> rows (x, t [B] and η cut alike; the last block zero-padded).</summary>
    private Tensor Blocked(Tensor x, Tensor t, Tensor? eta, Tensor? labels)
    {
        long n = x.shape[0];
        var outs = new List<Tensor>();
        try
        {
            for (long start = 0; start < n; start += fixedRows)
            {
                using var scope = NewDisposeScope();
                long count = Math.Min(fixedRows, n - start);
                Tensor Cut(Tensor v) => Pad(v.narrow(0, start, count), fixedRows - count);
                var tb = t.dim() == 0 ? t.alias() : Cut(t);
                var y = Forward(Cut(x), tb, eta is null ? null : Cut(eta), labels is null ? null : Cut(labels));
                outs.Add(y.narrow(0, 0, count).MoveToOuterDisposeScope());
            }
            return outs.Count == 1 ? outs[0].alias() : cat(outs, 0);
        }
        finally
        {
            foreach (var o in outs) o.Dispose();
        }
    }

    private static Tensor Pad(Tensor v, long rows)
    {
        if (rows == 0) return v;
        var shape = v.shape.ToArray();
        shape[0] = rows;
        using var z = zeros(shape, dtype: v.dtype, device: v.device);
        return cat([v, z], 0);
    }

    public void Dispose()
    {
        if (ownsNoise) noise?.Dispose();
    }
}
