using Diffusion.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Diffusion.Metrics.Features;

/// <summary>
/// The small image classifier behind <c>classifier:DATASET</c> features: three 3×3 convolutions
/// (w, 2w, 4w channels, padding 1), each followed by GroupNorm (8 groups) and ReLU, with 2×2 max
/// pooling after the first two; the last feature map flattened into a fully connected layer of 4w
/// units with ReLU — the features, 128-d at the default w = 32 — and a linear classifier on them.
/// About 8.4 M multiply-adds per 28×28 image. Built from <see cref="Layers"/> (initialised GroupNorm,
/// convolutions with correct gradients).
/// </summary>
public sealed class SmallCnn : Module<Tensor, Tensor>
{
    /// <summary>Bumped whenever the architecture changes, so that cached weights of an older one are not reused.</summary>
    public const string Version = "small-cnn-v3";

    private readonly SafeConv2d conv1, conv2, conv3;
    private readonly GroupNorm norm1, norm2, norm3;
    private readonly Linear hidden, head;

    public int Channels { get; }
    public int ImageHeight { get; }
    public int ImageWidth { get; }
    public int Classes { get; }
    public int FeatureDim { get; }

    /// <param name="channels">Channels of the input images (1 gray, 3 RGB).</param>
    /// <param name="classes">Number of classes the head predicts.</param>
    /// <param name="height">Image height and <paramref name="imageWidth"/> its width (the fully connected layer depends on them).</param>
    /// <param name="imageWidth">Image width in pixels (at least 4).</param>
    /// <param name="width">w, the channels of the first convolution.</param>
    public SmallCnn(int channels, int classes, int height, int imageWidth, int width = 32) : base(nameof(SmallCnn))
    {
        if (height < 4 || imageWidth < 4) throw new UserError($"classifier: images of {height}×{imageWidth} are too small (at least 4×4)");
        Channels = channels;
        ImageHeight = height;
        ImageWidth = imageWidth;
        Classes = classes;
        FeatureDim = 4 * width;
        conv1 = Layers.Conv2d(channels, width, 3, padding: 1);
        norm1 = Layers.GroupNorm(8, width);
        conv2 = Layers.Conv2d(width, 2 * width, 3, padding: 1);
        norm2 = Layers.GroupNorm(8, 2 * width);
        conv3 = Layers.Conv2d(2 * width, 4 * width, 3, padding: 1);
        norm3 = Layers.GroupNorm(8, 4 * width);
        hidden = Linear(4 * width * (height / 4) * (imageWidth / 4), 4 * width);
        head = Linear(4 * width, classes);
        RegisterComponents();
    }

    /// <summary>The penultimate features: [N, C, H, W] → [N, 4w].</summary>
    public Tensor Features(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = functional.max_pool2d(functional.relu(norm1.call(conv1.call(x))), kernel_size: 2);
        h = functional.max_pool2d(functional.relu(norm2.call(conv2.call(h))), kernel_size: 2);
        h = functional.relu(norm3.call(conv3.call(h)));
        return functional.relu(hidden.call(h.flatten(1))).MoveToOuterDisposeScope();
    }

    /// <summary>Class logits [N, classes].</summary>
    public override Tensor forward(Tensor x)
    {
        using var f = Features(x);
        return head.call(f);
    }
}
