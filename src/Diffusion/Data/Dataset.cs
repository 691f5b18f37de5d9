using Diffusion.Models;
using static TorchSharp.torch;

namespace Diffusion.Data;

/// <summary>
/// A dataset held in memory as one float32 tensor of examples: [N, D] for vectors, [N, C, H, W] for
/// images scaled to [−1, 1]. Optional integer labels (int64, [N], classes 0 … K−1) with the classes' names when the
/// source has them (Fashion-MNIST's, an image folder's sub-folders); for mixtures of Gaussians the true mixture.
/// </summary>
public sealed class Dataset : IDisposable
{
    public string Spec { get; }
    public Tensor Data { get; }
    public Tensor? Labels { get; }
    /// <summary>The name of each class (index = label) when the source names them; null otherwise.</summary>
    public IReadOnlyList<string>? ClassNames { get; }
    /// <summary>The exact data distribution when it is a Gaussian mixture (toy:gmm-grid).</summary>
    public GaussianMixture? Mixture { get; }

    public Dataset(string spec, Tensor data, Tensor? labels = null, GaussianMixture? mixture = null, IReadOnlyList<string>? classNames = null)
    {
        if (data.dim() != 2 && data.dim() != 4)
            throw new UserError($"{spec}: expected examples as N×D vectors or N×C×H×W images, got shape [{string.Join(", ", data.shape)}]");
        if (data.shape[0] == 0) throw new UserError($"{spec}: the dataset is empty");
        Spec = spec;
        Data = data.to_type(ScalarType.Float32).contiguous().DetachFromDisposeScope();
        if (labels is not null && (labels.dim() != 1 || labels.shape[0] != data.shape[0]))
            throw new UserError($"{spec}: {labels.shape.FirstOrDefault()} labels for {data.shape[0]} examples; expected one label per example");
        Labels = (labels is null || labels.dtype == ScalarType.Int64 ? labels : labels.to_type(ScalarType.Int64))?.DetachFromDisposeScope();
        Mixture = mixture;
        ClassNames = classNames;
    }

    /// <summary>The number of classes: the names' count when named, else the largest label + 1; 0 without labels.</summary>
    public int ClassCount => Labels is null ? 0 : ClassNames?.Count ?? (int)Labels.max().item<long>() + 1;

    public long Count => Data.shape[0];
    public long[] ExampleShape => Data.shape.Skip(1).ToArray();
    public bool IsImage => Data.dim() == 4;

    /// <summary>The first <paramref name="n"/> examples (all when n ≤ 0 or n ≥ Count).</summary>
    public Dataset Take(int n)
    {
        if (n <= 0 || n >= Count) return this;
        return new Dataset(Spec, Data.narrow(0, 0, n).clone(), Labels?.narrow(0, 0, n).clone(), Mixture, ClassNames);
    }

    public void Dispose()
    {
        Data.Dispose();
        Labels?.Dispose();
    }
}
