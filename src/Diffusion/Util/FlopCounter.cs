using TorchSharp;
using Diffusion.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Diffusion.Util;

/// <summary>
/// Counts the floating-point operations of one forward pass (multiply and add counted as two) of
/// the layers that dominate a UNet or MLP: convolutions, linear layers and attention's two batched
/// matrix products. Normalisations and activations are left out (a few percent).
/// </summary>
public static class FlopCounter
{
    /// <summary>FLOPs of one forward pass of <paramref name="net"/> on a batch of <paramref name="batch"/> examples, per example.</summary>
    public static double ForwardFlopsPerExample(DenoiserNetwork net, int batch = 2)
    {
        double flops = 0;
        var removers = new List<Action>();
        foreach (var m in net.modules())
        {
            switch (m)
            {
                case SafeConv2d c:
                {
                    var h = c.register_forward_hook((mod, input, output) =>
                    {
                        var w = c.weight.shape; // out, in, kh, kw
                        flops += 2.0 * output.numel() * w[1] * w[2] * w[3];
                        return output;
                    });
                    removers.Add(h.remove);
                    break;
                }
                case Conv2d c:
                {
                    var h = c.register_forward_hook((mod, input, output) =>
                    {
                        var w = c.weight!.shape; // out, in/groups, kh, kw
                        flops += 2.0 * output.numel() * w[1] * w[2] * w[3];
                        return output;
                    });
                    removers.Add(h.remove);
                    break;
                }
                case Linear l:
                {
                    var h = l.register_forward_hook((mod, input, output) =>
                    {
                        flops += 2.0 * output.numel() * l.weight!.shape[1];
                        return output;
                    });
                    removers.Add(h.remove);
                    break;
                }
            }
        }
        bool wasTraining = net.training;
        net.eval();
        try
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var x = zeros(new long[] { batch }.Concat(net.ExampleShape).ToArray());
            using var t500 = 500f.ToScalar();
            var t = full(batch, t500);
            net.call(x, t);
            // Attention: Q·Kᵀ and A·V, each 2·L²·C per example.
            foreach (var m in net.modules())
                if (m is AttentionBlock a) flops += batch * a.LastFlopsPerExample;
        }
        finally
        {
            foreach (var r in removers) r();
            if (wasTraining) net.train();
        }
        return flops / batch;
    }
}
