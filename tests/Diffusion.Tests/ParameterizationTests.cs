using Diffusion.Models;
using static TorchSharp.torch;

namespace Diffusion.Tests;

public class ParameterizationTests
{
    [Fact]
    public void Eps_x0_and_v_conversions_agree()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(3);
        var x0 = randn([64, 5], dtype: ScalarType.Float64, generator: gen);
        var eps = randn([64, 5], dtype: ScalarType.Float64, generator: gen);
        var ab = rand([64, 1], dtype: ScalarType.Float64, generator: gen) * 0.98 + 0.01;
        var a = ab.sqrt();
        var s = (1 - ab).sqrt();
        var xt = Parameterization.QSample(x0, eps, a, s);
        var v = Parameterization.V(x0, eps, a, s);
        foreach (var (kind, output) in new[] { (Prediction.Epsilon, eps), (Prediction.X0, x0), (Prediction.V, v) })
        {
            var (e, x) = Parameterization.EpsAndX0(kind, output, xt, a, s);
            Assert.True(e.allclose(eps, rtol: 0, atol: 1e-10), $"{kind}: ε");
            Assert.True(x.allclose(x0, rtol: 0, atol: 1e-10), $"{kind}: x0");
            Assert.True(Parameterization.Target(kind, x0, eps, a, s).allclose(output, rtol: 0, atol: 1e-12));
        }
    }
}
