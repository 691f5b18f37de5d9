using Diffusion.Util;
using Mono.Cecil;
using Mono.Cecil.Cil;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Tests;

/// <summary>
/// The guard against TorchSharp's short-lived implicit Scalars (see <see cref="ScalarOps"/>): no code of ours calls
/// a TorchSharp member that makes one, found by reading the compiled IL; the replacements compute bit for bit what
/// TorchSharp's operators compute; and our AdamW is TorchSharp's AdamW, bit for bit and state for state.
/// </summary>
public class ScalarSafetyTests
{
    // TorchSharp offers no overload of softplus taking Scalars (its Scalar one is private); two calls per forward of
    // SMD's hyper-layer, on a vector of scales, are what is left.
    private static readonly string[] Allowed = ["Diffusion.Models.HyperLayer::forward -> softplus"];

    private static bool IsImplicitScalar(MethodReference m) => m.Name == "op_Implicit" && m.DeclaringType.FullName == "TorchSharp.Scalar";

    private static IEnumerable<MethodDefinition> Bodies(AssemblyDefinition a) =>
        a.MainModule.GetTypes().SelectMany(t => t.Methods).Where(m => m.HasBody);

    // Calls, and lambdas taken as delegates (ldftn), which run as separate methods.
    private static IEnumerable<MethodReference> Calls(MethodDefinition m) =>
        m.Body.Instructions.Where(i => i.OpCode == OpCodes.Call || i.OpCode == OpCodes.Callvirt || i.OpCode == OpCodes.Newobj || i.OpCode == OpCodes.Ldftn)
            .Select(i => i.Operand).OfType<MethodReference>();

    /// <summary>TorchSharp's methods that convert a number to a Scalar implicitly, directly or through another of its methods.</summary>
    private static HashSet<string> MakersOfImplicitScalars(AssemblyDefinition torchSharp)
    {
        var methods = Bodies(torchSharp).ToList();
        var makers = methods.Where(m => Calls(m).Any(IsImplicitScalar)).Select(m => m.FullName).ToHashSet();
        for (bool grew = true; grew;)
        {
            grew = false;
            foreach (var m in methods)
                if (!makers.Contains(m.FullName) && Calls(m).Any(c => makers.Contains(c.GetElementMethod().FullName)))
                    grew |= makers.Add(m.FullName);
        }
        return makers;
    }

    private static List<string> Offences(AssemblyDefinition ours, HashSet<string> makers) =>
        Bodies(ours).SelectMany(m => Calls(m)
                .Where(c => IsImplicitScalar(c) || makers.Contains(c.GetElementMethod().FullName))
                .Select(c => $"{m.DeclaringType.FullName}::{m.Name} -> {c.Name}"))
            .Distinct().ToList();

    private static AssemblyDefinition Read(Type t) => AssemblyDefinition.ReadAssembly(t.Assembly.Location);

    [Fact]
    public void The_detector_sees_TorchSharps_implicit_scalars()
    {
        var makers = MakersOfImplicitScalars(Read(typeof(Scalar)));
        string Name(string type, string method, params string[] parameters) =>
            Read(typeof(Scalar)).MainModule.GetType(type).Methods
                .Single(m => m.Name == method && m.Parameters.Select(p => p.ParameterType.Name).SequenceEqual(parameters)).FullName;
        // a + b of two tensors passes an implicit alpha of 1; t * 0.5 converts 0.5; AdamW.step converts 1 − β₂.
        Assert.Contains(Name("TorchSharp.torch/Tensor", "op_Addition", "Tensor", "Tensor"), makers);
        Assert.Contains(Name("TorchSharp.torch/Tensor", "op_Multiply", "Tensor", "Double"), makers);
        Assert.Contains(Name("TorchSharp.Modules.AdamW", "step", "Func`1"), makers);
        // The explicit forms do not.
        Assert.DoesNotContain(Name("TorchSharp.torch/Tensor", "add", "Tensor", "Scalar"), makers);
        Assert.DoesNotContain(Name("TorchSharp.torch/Tensor", "mul", "Scalar"), makers);
        Assert.DoesNotContain(Name("TorchSharp.torch/Tensor", "op_Subtraction", "Tensor", "Tensor"), makers);
    }

    [Fact]
    public void No_code_of_ours_makes_an_implicit_scalar()
    {
        var makers = MakersOfImplicitScalars(Read(typeof(Scalar)));
        var offences = Offences(Read(typeof(ScalarOps)), makers).Concat(Offences(Read(typeof(Diffusion.Cli.Entry)), makers))
            .Where(o => !Allowed.Contains(o)).ToList();
        Assert.True(offences.Count == 0, "implicit TorchSharp Scalars in: " + string.Join("; ", offences));
    }

    [Fact]
    public void The_explicit_forms_compute_what_TorchSharps_operators_compute_bit_for_bit()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(7);
        var a = randn([64, 33], generator: g);
        var b = randn([64, 33], generator: g);
        var i = randint(-50, 50, [200], generator: g);
        static void Same(Tensor expected, Tensor actual)
        {
            Assert.Equal(expected.dtype, actual.dtype);
            Assert.True(expected.equal(actual).all().item<bool>());
        }
        Same(a + b, a.Add(b));
        Same(a + 0.3, a.Add(0.3));
        Same(i + 3, i.Add(3L));
        Same(a - 0.7, a.Sub(0.7));
        Same(i - 2, i.Sub(2L));
        Same(0.5 - a, a.RSub(0.5));
        Same(1 - i, i.RSub(1L));
        Same(a * 1.7, a.Mul(1.7));
        Same(i * 3, i.Mul(3L));
        Same(a / 0.3, a.Div(0.3));
        Same(i / 7, i.Div(7L));
        Same(i % 7, i.Remainder(7));
        Same(a.pow(2), a.Pow(2L));
        Same(a.abs().pow(0.5), a.abs().Pow(0.5));
        Same(a.clamp(-0.5, 0.5), a.Clamp(-0.5, 0.5));
        Same(a.clamp_min(0), a.ClampMin(0));
        Same(a < 0.1, a.Lt(0.1));
        Same(i >= 4, i.Ge(4));
        Same(arange(11), ScalarOps.Arange(11));
        Same(arange(11, dtype: ScalarType.Float32), ScalarOps.Arange(11, ScalarType.Float32));
        Same(a.clone().mul_(0.9).add_(b, alpha: 0.1), a.clone().MulInPlace(0.9).AddInPlace(b, 0.1));
        Same(a.clone().add_(b), a.clone().AddInPlace(b));
        Same(a.clone().div_(3).add_(1.0).pow_(3), a.clone().DivInPlace(3L).AddInPlace(1.0).PowInPlace(3));
        Same(a.clone().fill_(2.5), a.clone().Fill(2.5));
    }

    private static (TorchSharp.Modules.Sequential Net, Tensor X, Tensor Y) Problem(long seed)
    {
        manual_seed(seed);
        var net = nn.Sequential(nn.Linear(6, 16), nn.SiLU(), nn.Linear(16, 3));
        var g = new Generator(11);
        return (net, randn([32, 6], generator: g), randn([32, 3], generator: g));
    }

    private static void Step(TorchSharp.Modules.Sequential net, optim.Optimizer opt, Tensor x, Tensor y, double lr)
    {
        using var scope = NewDisposeScope();
        foreach (var group in opt.ParamGroups) group.LearningRate = lr;
        opt.zero_grad();
        var loss = nn.functional.mse_loss(net.call(x), y);
        loss.backward();
        opt.step();
    }

    private static byte[] State(TorchSharp.Modules.OptimizerHelper opt)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms)) opt.save_state_dict(w);
        return ms.ToArray();
    }

    private static void Load(TorchSharp.Modules.OptimizerHelper opt, byte[] state)
    {
        using var r = new BinaryReader(new MemoryStream(state));
        opt.load_state_dict(r);
    }

    [Fact]
    public void Our_AdamW_is_TorchSharps_AdamW_bit_for_bit_and_reads_and_writes_its_state()
    {
        var (theirsNet, x, y) = Problem(3);
        var (oursNet, _, _) = Problem(3);
        using var theirs = optim.AdamW(theirsNet.parameters(), 1e-3, 0.9, 0.999, 1e-8, 0.01);
        using var ours = new Diffusion.Training.AdamW(oursNet.parameters(), 1e-3, 0.9, 0.999, 1e-8, 0.01);
        double[] lrs = [0.0, 2e-4, 5e-4, 1e-3, 1e-3, 8e-4, 3e-4, 1e-4];
        foreach (double lr in lrs)
        {
            Step(theirsNet, theirs, x, y, lr);
            Step(oursNet, ours, x, y, lr);
            foreach (var (p, q) in theirsNet.parameters().Zip(oursNet.parameters()))
                Assert.True(p.equal(q).all().item<bool>(), $"parameters differ after a step at lr {lr}");
        }
        Assert.Equal(State(theirs), State(ours));

        // A state TorchSharp wrote (every checkpoint before this class) resumes in ours, and the runs stay equal.
        var (resumedNet, _, _) = Problem(3);
        foreach (var (dst, src) in resumedNet.parameters().Zip(theirsNet.parameters())) { using var _ = no_grad(); dst.copy_(src); }
        using var resumed = new Diffusion.Training.AdamW(resumedNet.parameters(), 1e-3, 0.9, 0.999, 1e-8, 0.01);
        Load(resumed, State(theirs));
        Step(theirsNet, theirs, x, y, 5e-4);
        Step(resumedNet, resumed, x, y, 5e-4);
        foreach (var (p, q) in theirsNet.parameters().Zip(resumedNet.parameters()))
            Assert.True(p.equal(q).all().item<bool>(), "a resumed step differs");

        // And ours writes what TorchSharp's reads.
        var (otherNet, _, _) = Problem(3);
        using var other = optim.AdamW(otherNet.parameters(), 1e-3, 0.9, 0.999, 1e-8, 0.01);
        Load(other, State(ours));
        Assert.Equal(State(ours), State(other));
    }
}
