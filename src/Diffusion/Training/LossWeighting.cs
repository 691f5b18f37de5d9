using Diffusion.Config;
using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;

namespace Diffusion.Training;

/// <summary>
/// The loss-weighting family of METHODS.md §2. Every weight is defined on the per-example ε-error
/// ‖ε − ε̂‖²:
/// <list type="bullet">
/// <item><c>constant</c>: 1 (the baseline "simple" loss)</item>
/// <item><c>snr</c>: 1/SNR — equal to the x0-MSE ‖x0 − x̂0‖²</item>
/// <item><c>p2</c>: 1/(k + SNR)^γ (defaults k = 1, γ = 1)</item>
/// <item><c>min-snr</c>: min(SNR, γ)/SNR (default γ = 5); on the v-error this is the paper's min(SNR, γ)/(SNR + 1)</item>
/// <item><c>debiased</c>: 1/√SNR, no clipping or normalisation (the debiased-estimation paper)</item>
/// </list>
/// For x0- and v-prediction the network's error is converted exactly, not approximated: with x_t
/// fixed, ε̂ − ε = A_t·(pred − target) with A_t² = 1 (ε), SNR_t (x0) or ᾱ_t (v), so the weighted loss
/// is w(SNR_t)·A_t²·‖pred − target‖².
/// </summary>
public sealed class LossWeighting
{
    /// <summary>The registry entry (<see cref="Remedies"/>): the debiased member of the family; any non-constant weighting counts as on.</summary>
    public static readonly Remedy Remedy = new("debiased", ["debiased-weighting"], "biased loss weighting",
        ["loss.weighting", "p2.k", "p2.gamma", "min-snr.gamma"], ["loss.weighting=debiased"], [],
        c => c.Loss.Weighting != "constant", c => $"weighting({c.Loss.Weighting})");

    public string Name { get; }
    private readonly double p2K, p2Gamma, minSnrGamma;

    public LossWeighting(string name, double p2K = 1, double p2Gamma = 1, double minSnrGamma = 5)
    {
        if (!LossConfig.Weightings.Contains(name)) throw new ConfigException($"loss.weighting: expected one of {string.Join(", ", LossConfig.Weightings)}, got '{name}'");
        Name = name;
        this.p2K = p2K; this.p2Gamma = p2Gamma; this.minSnrGamma = minSnrGamma;
    }

    public static LossWeighting From(RunConfig cfg) => new(cfg.Loss.Weighting, cfg.P2.K, cfg.P2.Gamma, cfg.MinSnr.Gamma);

    /// <summary>The weight on the ε-error at signal-to-noise ratio <paramref name="snr"/>.</summary>
    public double Weight(double snr) => Name switch
    {
        "constant" => 1.0,
        "snr" => 1.0 / snr,
        "p2" => 1.0 / Math.Pow(p2K + snr, p2Gamma),
        "min-snr" => Math.Min(snr, minSnrGamma) / snr,
        _ => 1.0 / Math.Sqrt(snr),
    };

    /// <summary>A_t²: the factor that turns a squared error in the network's parameterisation into the squared ε-error at step t.</summary>
    public static double EpsErrorScale(Prediction p, NoiseSchedule s, int t) => p switch
    {
        Prediction.Epsilon => 1.0,
        Prediction.X0 => s.Snr[t],
        _ => s.AlphasCumprod[t],
    };

    /// <summary>w(SNR_t)·A_t² for each example's integer time (float64 [N]).</summary>
    public Tensor PerExample(Prediction p, NoiseSchedule s, Tensor t)
    {
        var table = new double[s.T];
        for (int i = 0; i < s.T; i++) table[i] = Weight(s.Snr[i]) * EpsErrorScale(p, s, i);
        return NoiseSchedule.Gather(table, t, 1);
    }
}
