using Diffusion.Models;
using static TorchSharp.torch;

namespace Diffusion.Data;

/// <summary>
/// A dataset held in memory as one float32 tensor of examples: [N, D] for vectors, [N, C, H, W] for
/// images scaled to [−1, 1]. Optional integer labels; for mixtures of Gaussians the true mixture.
/// </summary>
public sealed class Dataset : IDisposable
{
    public string Spec { get; }
    public Tensor Data { get; }
    public Tensor? Labels { get; }
    /// <summary>The exact data distribution when it is a Gaussian mixture (toy:gmm-grid).</summary>
    public GaussianMixture? Mixture { get; }

    public Dataset(string spec, Tensor data, Tensor? labels = null, GaussianMixture? mixture = null)
    {
        if (data.dim() != 2 && data.dim() != 4)
            throw new UserError($"{spec}: expected examples as N×D vectors or N×C×H×W images, got shape [{string.Join(", ", data.shape)}]");
        if (data.shape[0] == 0) throw new UserError($"{spec}: the dataset is empty");
        Spec = spec;
        Data = data.to_type(ScalarType.Float32).contiguous().DetachFromDisposeScope();
        Labels = labels?.DetachFromDisposeScope();
        Mixture = mixture;
    }

    public long Count => Data.shape[0];
    public long[] ExampleShape => Data.shape.Skip(1).ToArray();
    public bool IsImage => Data.dim() == 4;

    /// <summary>The first <paramref name="n"/> examples (all when n ≤ 0 or n ≥ Count).</summary>
    public Dataset Take(int n)
    {
        if (n <= 0 || n >= Count) return this;
        return new Dataset(Spec, Data.narrow(0, 0, n).clone(), Labels?.narrow(0, 0, n).clone(), Mixture);
    }

    public void Dispose()
    {
        Data.Dispose();
        Labels?.Dispose();
    }
}
