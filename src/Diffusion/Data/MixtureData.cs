using Diffusion.Models;
using static TorchSharp.torch;

namespace Diffusion.Data;

/// <summary>
/// <c>gmm:SPEC.json</c>: points drawn from the Gaussian mixture of a spec file (options <c>?n=…&amp;seed=…</c>,
/// default 50 000 points, seed 0); the dataset keeps the mixture, so its samples can be scored against it.
/// </summary>
public static class MixtureData
{
    public static Dataset FromSpec(DataRequest request)
    {
        var (file, opts) = DataSources.Options(request.Arg);
        var o = new SpecOptions(request.Spec, opts);
        int n = o.Int("n", 50_000);
        long seed = o.Long("seed", 0);
        o.Done();
        var (gmm, _) = GaussianMixture.Load(file);
        using var gen = new Generator((ulong)seed);
        using var x = gmm.Sample(n, gen);
        return new Dataset(request.Spec, x.to_type(ScalarType.Float32), mixture: gmm);
    }
}
