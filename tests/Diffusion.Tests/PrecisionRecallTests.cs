using Diffusion.Metrics;
using static TorchSharp.torch;

namespace Diffusion.Tests;

public class PrecisionRecallTests
{
    private static Tensor OnLine(params double[] xs) =>
        stack([tensor(xs, dtype: ScalarType.Float64), zeros(xs.Length, dtype: ScalarType.Float64)], 1);

    [Fact]
    public void Hand_computed_clouds_on_a_line()
    {
        // Real: 0, 1, …, 9. With k = 3 the radius of 9 is 3 (its third neighbour is 6), of 8 is 2, of 0 is 3.
        // Fake: 0.5 and 1.5 lie inside; 11.9 lies in 9's ball (≤ 12); 12.5 in none (9 reaches 12, 8 reaches 10);
        // 30–33 are far away. Precision = 3/8.
        // Fake radii: the third neighbour of 0.5 is 12.5 (distance 12), so 0.5's ball covers [−11.5, 12.5] ⊃ all real
        // points: recall = 1.
        using var real = OnLine(0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
        using var fake = OnLine(0.5, 1.5, 11.9, 12.5, 30, 31, 32, 33);
        var pr = PrecisionRecall.Compute(real, fake, k: 3);
        Assert.Equal(3.0 / 8, pr.Precision, 12);
        Assert.Equal(1.0, pr.Recall, 12);
        using var radii = PrecisionRecall.KthNeighbourDistances(real, 3);
        Assert.Equal([3, 2, 2, 2, 2, 2, 2, 2, 2, 3], TestUtil.Row(radii).Select(v => Math.Round(v, 9)));
        // With k = 1 the real balls have radius 1: 11.9 is now outside (9 + 1 = 10), 0.5 and 1.5 inside.
        Assert.Equal(2.0 / 8, PrecisionRecall.Compute(real, fake, k: 1).Precision, 12);
    }

    [Fact]
    public void Identical_sets_have_full_precision_and_recall_and_disjoint_sets_none()
    {
        using var g = new Generator(2);
        using var x = randn([500, 8], generator: g);
        var same = PrecisionRecall.Compute(x, x.clone());
        Assert.Equal(1.0, same.Precision);
        Assert.Equal(1.0, same.Recall);
        using var far = randn([400, 8], generator: g) + 100.0;
        var none = PrecisionRecall.Compute(x, far);
        Assert.Equal(0.0, none.Precision);
        Assert.Equal(0.0, none.Recall);
    }

    [Fact]
    public void Mode_collapse_keeps_precision_and_loses_recall()
    {
        // Fake samples concentrated near the centre of the real distribution: they all look real (precision ≈ 1)
        // but cover only the middle of it (recall small); the reverse roles swap the two numbers.
        using var g = new Generator(4);
        using var real = randn([2000, 2], dtype: ScalarType.Float64, generator: g);
        using var fake = randn([2000, 2], dtype: ScalarType.Float64, generator: g) * 0.2;
        var pr = PrecisionRecall.Compute(real, fake);
        Assert.True(pr.Precision > 0.97, $"precision {pr.Precision:F3}");
        Assert.True(pr.Recall < 0.35, $"recall {pr.Recall:F3}");
        var swapped = PrecisionRecall.Compute(fake, real);
        Assert.True(swapped.Recall > 0.97 && swapped.Precision < 0.35, $"swapped: P {swapped.Precision:F3}, R {swapped.Recall:F3}");
        // Two samples of one distribution: both high (not exactly 1: the k-NN balls leave gaps in the tails).
        using var real2 = randn([2000, 2], dtype: ScalarType.Float64, generator: g);
        var both = PrecisionRecall.Compute(real, real2);
        Assert.True(both.Precision > 0.9 && both.Recall > 0.9, $"one distribution: P {both.Precision:F3}, R {both.Recall:F3}");
    }
}
