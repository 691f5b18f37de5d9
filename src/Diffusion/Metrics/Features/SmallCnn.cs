using Diffusion.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Diffusion.Metrics.Features;

/// <summary>
/// The small image classifier behind <c>classifier:DATASET</c> features: three 3×3 convolutions
/// (width w, 2w, 4w channels; the last two with stride 2), each followed by GroupNorm and ReLU, a
/// fourth 3×3 convolution at the lowest resolution, global average pooling to a 4w-dimensional
/// feature vector (the features, 128-d at the default w = 32), and a linear classifier on it.
/// Built from <see cref="Layers"/> (initialised GroupNorm, convolutions with correct gradients).
/// </summary>
public sealed class SmallCnn : Module<Tensor, Tensor>
{
    /// <summary>Bumped whenever the architecture changes, so that cached weights of an older one are not reused.</summary>
    public const string Version = "small-cnn-v1";

    private readonly SafeConv2d conv1, conv2, conv3, conv4;
    private readonly GroupNorm norm1, norm2, norm3, norm4;
    private readonly Linear head;

    public int Channels { get; }
    public int Classes { get; }
    public int FeatureDim { get; }

    public SmallCnn(int channels, int classes, int width = 32) : base(nameof(SmallCnn))
    {
        Channels = channels;
        Classes = classes;
        FeatureDim = 4 * width;
        conv1 = Layers.Conv2d(channels, width, 3, padding: 1);
        norm1 = Layers.GroupNorm(8, width);
        conv2 = Layers.Conv2d(width, 2 * width, 3, stride: 2, padding: 1);
        norm2 = Layers.GroupNorm(8, 2 * width);
        conv3 = Layers.Conv2d(2 * width, 4 * width, 3, stride: 2, padding: 1);
        norm3 = Layers.GroupNorm(8, 4 * width);
        conv4 = Layers.Conv2d(4 * width, 4 * width, 3, padding: 1);
        norm4 = Layers.GroupNorm(8, 4 * width);
        head = Linear(4 * width, classes);
        RegisterComponents();
    }

    /// <summary>The penultimate features: [N, C, H, W] → [N, 4w].</summary>
    public Tensor Features(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = functional.relu(norm1.call(conv1.call(x)));
        h = functional.relu(norm2.call(conv2.call(h)));
        h = functional.relu(norm3.call(conv3.call(h)));
        h = functional.relu(norm4.call(conv4.call(h)));
        return h.mean([2, 3]).MoveToOuterDisposeScope();
    }

    /// <summary>Class logits [N, classes].</summary>
    public override Tensor forward(Tensor x)
    {
        using var f = Features(x);
        return head.call(f);
    }
}
