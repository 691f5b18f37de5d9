using Diffusion.Models;
using static TorchSharp.torch;

namespace Diffusion.Data;

/// <summary>
/// <c>gmm:SPEC.json</c>: points drawn from the Gaussian mixture of a spec file (options <c>?n=…&amp;seed=…</c>,
/// default 50 000 points, seed 0); the dataset keeps the mixture, so its samples can be scored against it. Each
/// point's label is the component it was drawn from (a class-conditional model has one class per component).
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
        var (x, k) = gmm.SampleWithComponents(n, gen);
        using (x)
        using (k)
            return new Dataset(request.Spec, x.to_type(ScalarType.Float32), k.clone(), mixture: gmm);
    }
}
