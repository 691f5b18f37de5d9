using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Diffusion.Training;

/// <summary>
/// TorchSharp's AdamW with its update step rewritten to hold every <see cref="Scalar"/> it passes to libtorch
/// until the call has returned (see <see cref="Util.ScalarOps"/> for why: TorchSharp's own step makes implicit
/// Scalars, and one freed by the garbage collector mid-call killed a two-hour training run with a
/// <c>Scalar.h toFloat</c> fault). The arithmetic is the same sequence of libtorch kernels with the same
/// values, so parameters and moments are bit-identical to TorchSharp's (TrainingTests checks this step by
/// step), and the saved state is TorchSharp's format, written and read by TorchSharp's own code.
/// </summary>
/// <remarks>
/// The class is named AdamW on purpose: TorchSharp records the optimizer's type name in its saved state and
/// checks it on load, so the checkpoints written before this class existed load into it, and its
/// checkpoints load into TorchSharp's AdamW. AMSGrad and maximize are not supported (the trainer uses
/// neither).
/// </remarks>
public sealed class AdamW : TorchSharp.Modules.AdamW
{
    public AdamW(IEnumerable<Parameter> parameters, double lr, double beta1, double beta2, double eps, double weightDecay)
        : base(parameters, lr, beta1, beta2, eps, weightDecay, amsgrad: false, maximize: false)
    {
    }

    /// <summary>One AdamW update of every parameter that has a gradient.</summary>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        return _step<ParamGroup>(group =>
        {
            var o = group.Options;
            if (o.amsgrad == true || o.maximize == true) throw new NotSupportedException("AdamW: amsgrad and maximize are not supported");
            double beta1 = o.beta1!.Value, beta2 = o.beta2!.Value, eps = o.eps!.Value, lr = o.LearningRate!.Value, wd = o.weight_decay!.Value;
            using var decay = (1 - lr * wd).ToScalar();
            using var b1 = beta1.ToScalar();
            using var oneMinusB1 = (1 - beta1).ToScalar();
            using var b2 = beta2.ToScalar();
            using var oneMinusB2 = (1 - beta2).ToScalar();
            using var epsilon = eps.ToScalar();
            foreach (var p in group.Parameters)
            {
                var state = (State)_state[p.Handle];
                using var grad = p.grad;
                if (grad is null) continue;
                state.step++;
                p.mul_(decay);
                double correction1 = 1 - Math.Pow(beta1, state.step);
                double correction2 = 1 - Math.Pow(beta2, state.step);
                state.exp_avg.mul_(b1).add_(grad, oneMinusB1);
                state.exp_avg_sq.mul_(b2).addcmul_(grad, grad, oneMinusB2);
                using var rootCorrection2 = Math.Sqrt(correction2).ToScalar();
                using var root = state.exp_avg_sq.sqrt();
                using var denominator = root.div(rootCorrection2);
                denominator.add_(epsilon, Util.ScalarOps.One);
                using var stepSize = (0.0 - lr / correction1).ToScalar();
                p.addcdiv_(state.exp_avg, denominator, stepSize);
            }
        }, closure);
    }
}
