using Diffusion.Config;

namespace Diffusion.Training;

/// <summary>
/// The learning rate per step: linear warm-up from 0 over <c>train.warmup-steps</c>, then constant, or
/// cosine decay to 0 at <c>train.steps</c> (<c>train.lr-schedule</c>).
/// </summary>
public sealed class LrSchedule(TrainConfig train)
{
    /// <summary>Learning rate at step <paramref name="s"/> (0-based).</summary>
    public double At(long s)
    {
        double lr = train.Lr;
        int warm = train.WarmupSteps;
        if (warm > 0 && s < warm) return lr * (s + 1) / warm;
        if (train.LrSchedule == "cosine")
        {
            double total = Math.Max(1, train.Steps - warm);
            double p = Math.Clamp((s - warm) / total, 0, 1);
            return lr * 0.5 * (1 + Math.Cos(Math.PI * p));
        }
        return lr;
    }
}
