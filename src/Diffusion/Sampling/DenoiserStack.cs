using Diffusion.Config;
using Diffusion.Models;
using Diffusion.Training;
using static TorchSharp.torch;

namespace Diffusion.Sampling;

/// <summary>
/// The one builder of the denoiser the objective, the consistency chain, every sampler and every diagnostic use:
/// <code>
///   network (float32; SMD draws η from its noise generator)  →  E-TSDM time sharing  →  epsilon scaling
///     →  class conditioning with classifier-free guidance (a class-conditional model asked with classes)
/// </code>
/// Each layer is there only when the run's config (time sharing, SMD) or the sampling settings (epsilon scaling)
/// ask for it; the outer layers dispose the inner ones, and the network layer disposes a noise generator it owns.
/// </summary>
public static class DenoiserStack
{
    /// <summary>Wraps any denoiser (a network's or the exact mixture's) in time sharing and epsilon scaling, when given.</summary>
    public static IDenoiser Build(IDenoiser core, TimeSharing? sharing = null, EpsilonScaling? scaling = null, int timesteps = 0)
    {
        IDenoiser d = core;
        if (sharing is not null) d = new TimeSharedDenoiser(d, sharing);
        if (scaling is not null) d = new EpsilonScaledDenoiser(d, timesteps, scaling.B, scaling.K);
        return d;
    }

    /// <summary>
    /// <paramref name="d"/> asked with classes and guidance weight <paramref name="guidance"/>
    /// (<see cref="GuidedDenoiser"/>; set its <see cref="GuidedDenoiser.Labels"/> per batch, as
    /// <see cref="SampleRun.Draw"/> does); on failure <paramref name="d"/> is disposed.
    /// </summary>
    public static GuidedDenoiser Guided(IDenoiser d, double guidance)
    {
        try { return new GuidedDenoiser(d, guidance); }
        catch
        {
            d.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The denoiser of a network trained under <paramref name="cfg"/>: SMD's η drawn from <paramref name="noise"/>
    /// (disposed with the stack when <paramref name="ownsNoise"/>), time sharing when the run was trained with it,
    /// epsilon scaling when <paramref name="sampling"/> asks for it.
    /// </summary>
    public static IDenoiser ForNetwork(RunConfig cfg, DenoiserNetwork network, NoiseSource? noise, bool ownsNoise, SampleConfig? sampling = null,
                                       int fixedRows = 0)
    {
        var core = new NetworkDenoiser(network, Parameterization.Parse(cfg.Model.Prediction), noise, ownsNoise, fixedRows);
        return Build(core, TimeSharing.From(cfg), sampling is null ? null : EpsilonScaling.From(sampling), cfg.Schedule.Length);
    }

    /// <summary>
    /// The denoiser for sampling from a trained network: as <see cref="ForNetwork"/>, with SMD's η from a generator of
    /// its own seeded by <paramref name="seed"/> (so a deterministic sampler is deterministic given it).
    /// </summary>
    public static IDenoiser ForSampling(RunConfig cfg, DenoiserNetwork network, long seed, SampleConfig? sampling = null) =>
        ForNetwork(cfg, network, network.TakesNoise ? NoiseSource.Owning(new Generator((ulong)unchecked(seed * 7919 + 17))) : null, ownsNoise: true, sampling);

    /// <summary>
    /// The denoiser for split-invariant sampling (<see cref="SampleRun.DrawIndexed"/>): SMD's η from
    /// <paramref name="perSample"/>, the run's per-sample source (not owned), so each sample's η follows its own seed, and
    /// the network called on blocks of <see cref="NetworkDenoiser.InvariantBlock"/> rows, so a sample's values do not
    /// depend on the batch it is drawn in.
    /// </summary>
    public static IDenoiser ForSampling(RunConfig cfg, DenoiserNetwork network, NoiseSource perSample, SampleConfig? sampling = null) =>
        ForNetwork(cfg, network, perSample, ownsNoise: false, sampling, NetworkDenoiser.InvariantBlock);
}
