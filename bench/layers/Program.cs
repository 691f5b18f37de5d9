// Layer-level measurements behind bench/precision.md: float32 vs bfloat16 and NCHW vs channels-last for the demo
// UNet's convolutions and GroupNorm + SiLU (forward + backward, batch 64), the whole UNet, and the channel counts at
// which oneDNN's convolutions are wrong (against float64). Times are the process's CPU time per call, the minimum
// over interleaved repetitions, on one libtorch thread: robust to other jobs on the machine.
//   dotnet run -c Release --project bench/layers -- [REPS] [SECTION...]
// SECTION: conv, norm, blocks, attention, pointwise, unet, faults (default: all).
using Diffusion.Models;
using static TorchSharp.torch;

int reps = args.Length > 0 ? int.Parse(args[0]) : 10;
string[] sections = ["conv", "norm", "blocks", "attention", "pointwise", "unet", "faults"];
var chosen = args.Length > 1 ? args[1..] : sections;
foreach (var c in chosen)
    if (!sections.Contains(c)) { Console.Error.WriteLine($"bench/layers: unknown section '{c}'; expected one of {string.Join(", ", sections)}"); return 2; }
bool Run(string section) => chosen.Contains(section);
// As the CLI does (DIFFUSION_MALLOC_TUNING=0 to see the untuned allocator's page faults).
bool tuned = Diffusion.Util.NativeAllocator.Tune();
set_num_threads(1);
var proc = System.Diagnostics.Process.GetCurrentProcess();
double Cpu() { proc.Refresh(); return proc.TotalProcessorTime.TotalMilliseconds; }
Tensor CL(Tensor x) => x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);

// Minimum CPU time of each variant, the variants interleaved within every repetition.
double[] Interleaved(int n, Action<int> run)
{
    var best = Enumerable.Repeat(double.MaxValue, n).ToArray();
    for (int r = 0; r <= reps; r++)
        for (int v = 0; v < n; v++)
        {
            double c0 = Cpu();
            run(v);
            if (r > 0) best[v] = Math.Min(best[v], Cpu() - c0);
        }
    return best;
}

Console.WriteLine($"one thread, CPU ms per call, min over {reps} interleaved repetitions; allocator tuned: {tuned}");
string[] convModes = ["float32", "float32 CL", "bf16", "bf16 CL"];
if (Run("conv")) {
Console.WriteLine($"\n3×3 convolution, batch 64, forward + backward (input already in the mode's dtype and layout):");
Console.WriteLine($"{"layer",-18}" + string.Join("", convModes.Select(m => $"{m,14}")));
foreach (var (ci, co, side) in new[] { (32, 32, 28), (64, 64, 14), (64, 64, 7), (128, 64, 14), (96, 32, 28) })
{
    using var w = randn(co, ci, 3, 3).requires_grad_(true);
    using var x0 = randn(64, ci, side, side);
    var t = Interleaved(convModes.Length, v =>
    {
        using var sc = NewDisposeScope();
        bool bf = v >= 2, cl = v % 2 == 1;
        var x = cl ? CL(x0) : x0;
        if (bf) x = x.to_type(ScalarType.BFloat16);
        x = x.detach().requires_grad_(true);
        var y = nn.functional.conv2d(x, bf ? w.to_type(ScalarType.BFloat16) : w, padding: [1, 1]);
        y.sum().backward();
    });
    Console.WriteLine($"{$"{ci}→{co} at {side}×{side}",-18}" + string.Join("", t.Select(v => $"{v,14:F1}")));
}
}

if (Run("norm")) {
Console.WriteLine($"\nGroupNorm (8 groups, float32 weights) + SiLU, batch 64, forward + backward:");
Console.WriteLine($"{"layer",-18}" + string.Join("", convModes.Select(m => $"{m,14}")));
foreach (var (c, side) in new[] { (32, 28), (64, 14), (64, 7) })
{
    using var gn = Layers.GroupNorm(8, c);
    using var x0 = randn(64, c, side, side);
    var t = Interleaved(convModes.Length, v =>
    {
        using var sc = NewDisposeScope();
        bool bf = v >= 2, cl = v % 2 == 1;
        var x = cl ? CL(x0) : x0;
        if (bf) x = x.to_type(ScalarType.BFloat16);
        x = x.detach().requires_grad_(true);
        nn.functional.silu(gn.call(x)).sum().backward();
    });
    Console.WriteLine($"{$"{c} at {side}×{side}",-18}" + string.Join("", t.Select(v => $"{v,14:F1}")));
}
}

// Where the demo UNet's step goes: each block type at its shapes (dropout 0, as in the demo), forward + backward,
// input in the precision's activation dtype (bfloat16 activations flow between blocks under bf16-mixed), and the
// count of such blocks in the network, so the weighted sum approximates the step without the stem and the optimizer.
if (Run("blocks")) {
Console.WriteLine("\nThe demo UNet's blocks (dropout 0), batch 64, forward + backward; × = how many the network has:");
Console.WriteLine($"{"block",-24}{"×",3}{"float32",10}{"bf16",10}{"gain",8}");
var blocks = new (string Name, EmbBlock Block, int Count, int Ch, int Side)[]
{
    ("res 32→32 at 28×28", new ResBlock(32, 32, 128, 0, 8), 1, 32, 28),
    ("downsample 32 at 28×28", new Downsample(32), 1, 32, 28),
    ("res 32→64 at 14×14", new ResBlock(32, 64, 128, 0, 8), 1, 32, 14),
    ("downsample 64 at 14×14", new Downsample(64), 1, 64, 14),
    ("res 64→64 at 7×7", new ResBlock(64, 64, 128, 0, 8), 3, 64, 7),
    ("attention 64 at 7×7", new AttentionBlock(64, 32, 8), 4, 64, 7),
    ("res 128→64 at 7×7", new ResBlock(128, 64, 128, 0, 8), 2, 128, 7),
    ("upsample 64 → 14×14", new Upsample(64, 14), 1, 64, 7),
    ("res 128→64 at 14×14", new ResBlock(128, 64, 128, 0, 8), 1, 128, 14),
    ("res 96→64 at 14×14", new ResBlock(96, 64, 128, 0, 8), 1, 96, 14),
    ("upsample 64 → 28×28", new Upsample(64, 28), 1, 64, 14),
    ("res 96→32 at 28×28", new ResBlock(96, 32, 128, 0, 8), 1, 96, 28),
    ("res 64→32 at 28×28", new ResBlock(64, 32, 128, 0, 8), 1, 64, 28),
};
using (var emb = randn(64, 128))
{
    var inputs = blocks.Select(b => randn(64, b.Ch, b.Side, b.Side)).ToArray();
    Precision[] ps = [Precision.Float32, Precision.Bf16Mixed];
    double sum32 = 0, sum16 = 0;
    for (int i = 0; i < blocks.Length; i++)
    {
        var b = blocks[i];
        var t = Interleaved(2, v =>
        {
            using var sc = NewDisposeScope();
            using var ac = Autocast.Enter(ps[v]);
            var x = (v == 1 ? inputs[i].to_type(ScalarType.BFloat16) : inputs[i]).detach().requires_grad_(true);
            b.Block.call(x, emb).to_type(ScalarType.Float32).square().mean().backward();
            b.Block.zero_grad();
        });
        sum32 += b.Count * t[0]; sum16 += b.Count * t[1];
        Console.WriteLine($"{b.Name,-24}{b.Count,3}{t[0],10:F1}{t[1],10:F1}{t[0] / t[1],7:F2}×");
    }
    Console.WriteLine($"{"weighted sum",-27}{sum32,10:F0}{sum16,10:F0}{sum32 / sum16,7:F2}×");
    foreach (var x in inputs) x.Dispose();
}
}

// Attention at 7×7 (64 channels, 2 heads of 32, batch 64): libtorch's fused kernel against the plain matmul–softmax–matmul.
if (Run("attention"))
{
Console.WriteLine("\nAttention products, 64 × 2 heads × 49 positions × 32, forward + backward:");
{
    var qkv = new[] { randn(64, 2, 49, 32), randn(64, 2, 49, 32), randn(64, 2, 49, 32) };
    string[] names = ["sdpa float32", "sdpa bf16", "matmul float32", "matmul bf16"];
    var t = Interleaved(4, v =>
    {
        using var sc = NewDisposeScope();
        var dt = v % 2 == 1 ? ScalarType.BFloat16 : ScalarType.Float32;
        var (q, k, w) = (qkv[0].to_type(dt).requires_grad_(true), qkv[1].to_type(dt).requires_grad_(true), qkv[2].to_type(dt).requires_grad_(true));
        var y = v < 2 ? nn.functional.scaled_dot_product_attention(q, k, w)
                      : matmul(matmul(q, k.transpose(-1, -2)).mul(1.0 / Math.Sqrt(32)).softmax(-1), w);
        y.to_type(ScalarType.Float32).square().mean().backward();
    });
    Console.WriteLine(string.Join("   ", names.Select((n, i) => $"{n} {t[i]:F1} ms")));
    foreach (var x in qkv) x.Dispose();
}
}

// 1×1 convolutions (the skip projections of the up path, attention's QKV and output projections) against the same
// product as a batched matrix multiplication, W [O, C] · x [B, C, H·W] (no layout change needed), bias added after.
if (Run("pointwise"))
{
    Console.WriteLine("\n1×1 convolution against W·x as a batched matmul, batch 64, forward + backward (weights float32, cast in the bf16 modes):");
    string[] pm = ["conv float32", "matmul float32", "conv bf16", "matmul bf16"];
    Console.WriteLine($"{"layer",-18}" + string.Join("", pm.Select(m => $"{m,16}")));
    foreach (var (ci, co, side) in new[] { (32, 64, 14), (128, 64, 7), (128, 64, 14), (96, 64, 14), (96, 32, 28), (64, 32, 28), (64, 192, 7), (64, 64, 7) })
    {
        using var w0 = randn(co, ci, 1, 1);
        using var b0 = randn(co);
        using var x0 = randn(64, ci, side, side);
        var t = Interleaved(pm.Length, v =>
        {
            using var sc = NewDisposeScope();
            var dt = v >= 2 ? ScalarType.BFloat16 : ScalarType.Float32;
            var w = w0.detach().requires_grad_(true).to_type(dt);
            var b = b0.detach().requires_grad_(true).to_type(dt);
            var x = x0.to_type(dt).detach().requires_grad_(true);
            var y = v % 2 == 0 ? nn.functional.conv2d(x, w, b)
                               : matmul(w.reshape(co, ci), x.reshape(64, ci, side * side)).add(b.reshape(1, co, 1)).reshape(64, co, side, side);
            y.to_type(ScalarType.Float32).square().mean().backward();
        });
        Console.WriteLine($"{$"{ci}→{co} at {side}×{side}",-18}" + string.Join("", t.Select(v => $"{v,16:F2}")));
    }
}

if (Run("unet")) {
Console.WriteLine("\nThe demo UNet (1.19 M parameters, dropout 0), batch 64:");
using (var net = new UNet(1, 28, 32, [1, 2, 2], 1, [7], 32, 0.0, 8))
{
    net.train();
    using var x = randn(64, 1, 28, 28);
    using var tt = full(64, 500f);
    // float32, bf16-mixed as the toolkit runs it, and bf16-mixed with attention as matmul–softmax–matmul (not yet the default).
    Precision[] ps = [Precision.Float32, Precision.Bf16Mixed, Precision.Bf16Mixed];
    string[] names = ["float32", "bf16-mixed", "bf16-mixed, matmul attention"];
    void Step(int v, bool backward)
    {
        using var sc = NewDisposeScope();
        Autocast.MatmulAttentionInBf16 = v == 2;
        using var ng = backward ? null : no_grad();
        using var ac = Autocast.Enter(ps[v]);
        var y = net.call(x, tt);
        if (backward) y.square().mean().backward();
        Autocast.MatmulAttentionInBf16 = false;
    }
    var fb = Interleaved(3, v => Step(v, true));
    var f = Interleaved(3, v => Step(v, false));
    for (int v = 0; v < 3; v++) Console.WriteLine($"{names[v],-30} forward + backward {fb[v],8:F0} ms   forward only {f[v],8:F0} ms");
    Console.WriteLine($"bf16-mixed speed-up: forward + backward {fb[0] / fb[1]:F2}×, forward {f[0] / f[1]:F2}×; with matmul attention {fb[0] / fb[2]:F2}× and {f[0] / f[2]:F2}×");
}
}

if (Run("faults"))
{
Console.WriteLine("\nChannel counts at which the plain oneDNN 3×3 convolution's forward is wrong (max error > 2 % of max |y|, against float64):");
static double Err(int ci, int co, ScalarType dt)
{
    using var sc = NewDisposeScope();
    var w = randn(co, ci, 3, 3) * 0.1; var b = randn(co); var a = randn(4, ci, 14, 14);
    var y64 = nn.functional.conv2d(a.to_type(ScalarType.Float64), w.to_type(ScalarType.Float64), b.to_type(ScalarType.Float64), padding: [1, 1]);
    var y = nn.functional.conv2d(a.to_type(dt), w.to_type(dt), b.to_type(dt), padding: [1, 1]);
    double e = (y.to_type(ScalarType.Float64) - y64).abs().max().item<double>() / y64.abs().max().item<double>();
    return double.IsNaN(e) ? double.PositiveInfinity : e;
}
var range = Enumerable.Range(1, 72).ToList();
Console.WriteLine("  float32, inputs 1–72 (32 outputs):  " + string.Join(",", range.Where(c => Err(c, 32, ScalarType.Float32) > 0.02)));
Console.WriteLine("  bfloat16, inputs 1–72 (32 outputs): " + string.Join(",", range.Where(c => Err(c, 32, ScalarType.BFloat16) > 0.02)));
Console.WriteLine("  bfloat16, outputs 1–72 (32 inputs): " + string.Join(",", range.Where(c => Err(32, c, ScalarType.BFloat16) > 0.02)));
}
return 0;
