using Diffusion.Models;
using Diffusion.Schedules;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Sampling;

/// <summary>
/// DPM-Solver (Lu et al. 2022) and DPM-Solver++ (Lu et al. 2022b): exponential-integrator solvers of the
/// diffusion probability-flow ODE in λ = log(α/σ), on the continuous view of the discrete schedule
/// (<see cref="ContinuousVp.ForSolver"/>, METHODS.md §6), from t = 1 to t = 1/N.
/// <para>
/// Both forms integrate the linear part exactly and expand the model's output in λ:
/// <c>dpmsolver</c> (noise prediction) x_t = (α_t/α_s)·x_s − α_t·∫_{λ_s}^{λ_t} e^{−λ}·ε̂ dλ, and <c>dpmsolver++</c>
/// (data prediction) x_t = (σ_t/σ_s)·x_s + σ_t·∫_{λ_s}^{λ_t} e^{λ}·x̂0 dλ. Written with ĥ = h = λ_t − λ_s for the noise form
/// and ĥ = −h for the data form, every update here has the one shape
/// x_t = L·x_s − C·[φ₁(ĥ)·m_s + correction terms], with L = α_t/α_s, C = σ_t (noise form) or
/// L = σ_t/σ_s, C = α_t (data form), m the model output (ε̂ or x̂0), φ₁(z) = e^z − 1,
/// φ₂(z) = φ₁(z)/z − 1, φ₃(z) = φ₂(z)/z − ½; the first-order update is DDIM.
/// The correction terms are the "dpmsolver" variants of the reference code (its recommended
/// <c>solver_type</c>): singlestep order 2 adds φ₁(ĥ)/(2r₁)·(m_{s1} − m_s), order 3 adds φ₂(ĥ)/r₂·(m_{s2} − m_s)
/// with the intermediate point s2 built by a second-order step through s1; multistep order 2 adds
/// ½·φ₁(ĥ)·D₁ and order 3 adds φ₂(ĥ)·D₁ + φ₃(ĥ)·D₂, where D₁ ≈ h·m′ and D₂ ≈ h²·m″ come from divided
/// differences of the last three outputs (with r₀ = h₀/h, r₁ = h₁/h the previous step ratios):
/// D₁,₀ = (m₀ − m₁)/r₀, D₁,₁ = (m₁ − m₂)/r₁, D₁ = D₁,₀ + r₀/(r₀+r₁)·(D₁,₀ − D₁,₁), D₂ = 2·(D₁,₀ − D₁,₁)/(r₀+r₁).
/// The reference code uses half that D₂, which costs 3M its third order (<see cref="ReferenceThirdOrderMultistep"/>).
/// </para>
/// <para>
/// Methods. <c>singlestep</c> spends exactly <c>steps</c> evaluations, combining orders ≤ <c>order</c> as
/// "DPM-Solver-fast" does (<see cref="SinglestepOrders"/>); with <c>logSNR</c> spacing the K outer steps are
/// uniform in λ and each is subdivided uniformly in λ, otherwise the outer and inner points are points of the
/// <c>steps</c>-interval grid. <c>multistep</c> takes <c>steps</c> steps on the grid with one evaluation each,
/// warming up from order 1 (2M: one first-order step; 3M: a first- then a second-order step); with
/// <c>lowerOrderFinal</c> (default) and few steps the last steps lower their order again:
/// min(order, steps + 1 − i) at step i when steps &lt; 10 for order 3 (the DPM-Solver authors' current code)
/// and steps &lt; 15 for order 2 (their earlier code and diffusers' DPMSolverMultistepScheduler).
/// </para>
/// <para>
/// The network is called with the real-valued time (t − 1/N)·N, never rounded, so time-conditioning
/// wrappers (E-TSDM's time sharing) see the solver's actual times. <c>denoiseToZero</c> adds one final
/// evaluation that returns x̂0 at t = 1/N (the reference code's <c>denoise_to_zero</c>). Clipping x̂0 to
/// [−1, 1] applies to the data form only (the noise form has no x̂0 in its update). Deterministic: draws
/// no random numbers.
/// </para>
/// </summary>
public sealed class DpmSolver : ISampler
{
    public static readonly string[] Algorithms = ["dpmsolver", "dpmsolver++"];
    public static readonly string[] Methods = ["singlestep", "multistep"];

    /// <summary>
    /// Which published behaviour the multistep solver follows (<c>--dpm-compat</c>):
    /// <list type="bullet">
    /// <item><c>corrected</c> (default): the Taylor D₂ (3M of third order) and lower-order final steps when steps &lt; 10
    /// for order 3, &lt; 15 for order 2;</item>
    /// <item><c>reference</c>: the DPM-Solver authors' <c>dpm_solver_pytorch.py</c> (commit 8acf2bb): half that D₂ (3M of
    /// second order) and lower-order final steps when steps &lt; 10, for every order;</item>
    /// <item><c>diffusers</c>: <c>DPMSolverMultistepScheduler</c>'s rule: half D₂ and lower-order final steps when steps &lt; 15, for every order.</item>
    /// </list>
    /// Singlestep solvers are the same in all three (their inner points are the reference's r₁, r₂ in λ).
    /// </summary>
    public static readonly string[] Compats = ["corrected", "reference", "diffusers"];

    /// <summary>The registry entry: <c>dpm-solver</c>, 20 evaluations by default.</summary>
    public static readonly SamplerKind Kind = new("dpm-solver", "DPM-Solver / DPM-Solver++ of order 1–3, singlestep or multistep",
        [
            new SamplerOption("algorithm", "dpm-solver: dpmsolver (noise prediction) or dpmsolver++ (data prediction, default)", Choices: Algorithms),
            new SamplerOption("method", "dpm-solver: multistep (default) or singlestep (DPM-Solver-fast: orders ≤ --order combined to spend exactly --steps evaluations)", Choices: Methods),
            new SamplerOption("order", "dpm-solver: 1, 2 (default) or 3; order 1 is DDIM", Choices: ["1", "2", "3"]),
            new SamplerOption("skip", "dpm-solver: where the steps go between t = 1 and 1/N: time-uniform (default), logSNR (uniform in log-SNR) or time-quadratic", Choices: ContinuousSpacing.Names),
            new SamplerOption("lower-order-final", "dpm-solver multistep: drop to order 2 and 1 at the last steps when steps < 10 for order 3, < 15 for order 2 (default on; --no-lower-order-final keeps the full order)", IsSwitch: true),
            new SamplerOption("denoise-to-zero", "dpm-solver: one more evaluation at the end that returns x̂0 at t = 1/N", IsSwitch: true),
            new SamplerOption("dpm-compat", "dpm-solver multistep: corrected (default: Taylor D₂, lower-order final below 10 steps for order 3, 15 for order 2), reference (dpm_solver_pytorch.py: half D₂, below 10 for every order) or diffusers (half D₂, below 15)", Choices: Compats),
        ],
        T => 20,
        (c, s, clip) => new DpmSolver(s, c.Steps, c.Order, c.Algorithm, c.Method, c.Skip, c.LowerOrderFinal, c.DenoiseToZero, clip && c.Algorithm == "dpmsolver++",
                                      c.Option("dpm-compat", "corrected")),
        c => $"{(c.Algorithm == "dpmsolver++" ? "dpm-solver++" : "dpm-solver")} {c.Method} order {c.Order}, {c.Steps} steps ({c.Skip}{(c.DenoiseToZero ? ", denoise to zero" : "")}" +
             $"{(c.Option("dpm-compat", "corrected") is var k && k != "corrected" ? ", " + k + " compat" : "")})");

    /// <summary>One solver step from <paramref name="From"/> to <paramref name="To"/> of order <paramref name="Order"/>; <paramref name="Inner"/> holds a singlestep update's intermediate times (Order − 1 of them).</summary>
    public sealed record Step(double From, double To, int Order, double[] Inner);

    private readonly bool dataPrediction, multistep, clip, denoiseToZero;
    private readonly int steps;
    private readonly Step[] plan;

    /// <summary>
    /// Multistep order 3 with the reference code's second-difference term (dpm_solver_pytorch and diffusers:
    /// D₂ = (D₁,₀ − D₁,₁)/(r₀ + r₁), half the Taylor coefficient, which makes 3M second order as the steps
    /// shrink — measured slopes ≈ 2.1 on the exact mixture model, docs/results/samplers.md) instead of ours,
    /// D₂ = 2(D₁,₀ − D₁,₁)/(r₀ + r₁) ≈ h²·m″, which is third order. For reproducing the reference's numbers; off by default.
    /// </summary>
    public bool ReferenceThirdOrderMultistep { get; init; }

    /// <summary>The published behaviour followed (<see cref="Compats"/>).</summary>
    public string Compat { get; }

    /// <summary>The continuous view the solver integrates on (its N and the network-time map).</summary>
    public ContinuousVp Vp { get; }
    /// <summary>The steps, in order.</summary>
    public IReadOnlyList<Step> Plan => plan;
    public int Evaluations => steps + (denoiseToZero ? 1 : 0);

    public DpmSolver(NoiseSchedule schedule, int steps, int order = 2, string algorithm = "dpmsolver++", string method = "multistep",
                     string skip = "time-uniform", bool lowerOrderFinal = true, bool denoiseToZero = false, bool clipDenoised = false,
                     string compat = "corrected")
    {
        if (!Compats.Contains(compat)) throw new UserError($"--dpm-compat {compat}: expected one of {string.Join(", ", Compats)}");
        Compat = compat;
        ReferenceThirdOrderMultistep = compat != "corrected";
        if (steps < 1) throw new UserError($"--steps must be at least 1, got {steps}");
        if (order < 1 || order > 3) throw new UserError($"--order must be 1, 2 or 3, got {order}");
        if (!Algorithms.Contains(algorithm)) throw new UserError($"--algorithm {algorithm}: expected one of {string.Join(", ", Algorithms)}");
        if (!Methods.Contains(method)) throw new UserError($"--method {method}: expected one of {string.Join(", ", Methods)}");
        if (!ContinuousSpacing.Names.Contains(skip)) throw new UserError($"--skip {skip}: expected one of {string.Join(", ", ContinuousSpacing.Names)}");
        dataPrediction = algorithm == "dpmsolver++";
        if (clipDenoised && !dataPrediction) throw new UserError("clipping x̂0 applies to dpm-solver with --algorithm dpmsolver++ only (the noise form's update has no x̂0 to clip)");
        multistep = method == "multistep";
        clip = clipDenoised;
        this.denoiseToZero = denoiseToZero;
        this.steps = steps;
        Vp = ContinuousVp.ForSolver(schedule);
        plan = multistep ? MultistepPlan(skip, steps, order, lowerOrderFinal) : SinglestepPlan(skip, steps, order);
    }

    /// <summary>
    /// The orders of the singlestep ("DPM-Solver-fast") steps that spend exactly <paramref name="steps"/>
    /// evaluations: order 1 → steps × 1; order 2 → steps/2 × 2, plus one first-order step when steps is odd;
    /// order 3 → K = steps/3 + 1 steps: (K−2) × 3 then 2, 1 when steps ≡ 0 (mod 3), (K−1) × 3 then 1 when ≡ 1,
    /// (K−1) × 3 then 2 when ≡ 2.
    /// </summary>
    public static int[] SinglestepOrders(int steps, int order)
    {
        var r = new List<int>();
        switch (order)
        {
            case 1:
                r.AddRange(Enumerable.Repeat(1, steps));
                break;
            case 2:
                r.AddRange(Enumerable.Repeat(2, steps / 2));
                if (steps % 2 == 1) r.Add(1);
                break;
            default:
                int k = steps / 3 + 1;
                switch (steps % 3)
                {
                    case 0: r.AddRange(Enumerable.Repeat(3, k - 2)); r.Add(2); r.Add(1); break;
                    case 1: r.AddRange(Enumerable.Repeat(3, k - 1)); r.Add(1); break;
                    default: r.AddRange(Enumerable.Repeat(3, k - 1)); r.Add(2); break;
                }
                break;
        }
        return r.ToArray();
    }

    /// <summary>The times at which the network is evaluated, in order (continuous t, not the network's time).</summary>
    public IReadOnlyList<double> EvaluationTimes()
    {
        var r = new List<double>();
        if (multistep) r.AddRange(plan.Select(s => s.From));
        else foreach (var s in plan) { r.Add(s.From); r.AddRange(s.Inner); }
        if (denoiseToZero) r.Add(Vp.TMin);
        return r;
    }

    private Step[] MultistepPlan(string skip, int steps, int order, bool lowerOrderFinal)
    {
        var times = ContinuousSpacing.Times(skip, Vp, Vp.TMax, Vp.TMin, steps);
        int lowerBelow = Compat switch { "reference" => 10, "diffusers" => 15, _ => order >= 3 ? 10 : 15 };
        var r = new Step[steps];
        for (int i = 1; i <= steps; i++)
        {
            int o = Math.Min(order, i);                                        // warm-up from order 1
            if (lowerOrderFinal && steps < lowerBelow) o = Math.Min(o, steps + 1 - i);
            r[i - 1] = new Step(times[i - 1], times[i], o, []);
        }
        return r;
    }

    private Step[] SinglestepPlan(string skip, int steps, int order)
    {
        var orders = SinglestepOrders(steps, order);
        var r = new Step[orders.Length];
        if (skip == "logSNR")
        {
            var outer = ContinuousSpacing.Times(skip, Vp, Vp.TMax, Vp.TMin, orders.Length);
            for (int i = 0; i < orders.Length; i++)
            {
                var inner = orders[i] > 1 ? ContinuousSpacing.Times(skip, Vp, outer[i], outer[i + 1], orders[i]) : [outer[i], outer[i + 1]];
                r[i] = new Step(outer[i], outer[i + 1], orders[i], inner[1..^1]);
            }
        }
        else
        {
            var grid = ContinuousSpacing.Times(skip, Vp, Vp.TMax, Vp.TMin, steps);
            int at = 0;
            for (int i = 0; i < orders.Length; i++)
            {
                r[i] = new Step(grid[at], grid[at + orders[i]], orders[i], grid[(at + 1)..(at + orders[i])]);
                at += orders[i];
            }
        }
        return r;
    }

    public Tensor Sample(IDenoiser model, Tensor xT, NoiseSource? gen, SamplerProgress? progress = null)
    {
        int done = 0;
        Tensor Eval(Tensor x, double t)
        {
            var m = ModelOutput(model, x, t, dataPrediction);
            progress?.Invoke(++done, Evaluations);
            return m;
        }

        var x = xT.clone();
        if (multistep) x = RunMultistep(x, Eval);
        else
        {
            foreach (var step in plan)
            {
                using var scope = NewDisposeScope();
                var next = SinglestepUpdate(x, step, Eval);
                x.Dispose();
                x = next.MoveToOuterDisposeScope();
            }
        }
        if (denoiseToZero)
        {
            using var scope = NewDisposeScope();
            var x0 = ModelOutput(model, x, Vp.TMin, data: true);
            progress?.Invoke(++done, Evaluations);
            x.Dispose();
            x = x0.MoveToOuterDisposeScope();
        }
        return x;
    }

    private Tensor RunMultistep(Tensor x, Func<Tensor, double, Tensor> eval)
    {
        var history = new List<(double T, Tensor M)>();   // latest last; at most the solver's order entries
        try
        {
            using (var scope = NewDisposeScope())
                history.Add((plan[0].From, eval(x, plan[0].From).MoveToOuterDisposeScope()));
            int keep = plan.Max(s => s.Order);
            for (int i = 0; i < plan.Length; i++)
            {
                using (var scope = NewDisposeScope())
                {
                    var next = MultistepUpdate(x, history, plan[i]);
                    x.Dispose();
                    x = next.MoveToOuterDisposeScope();
                }
                if (i == plan.Length - 1) break;                            // the last output is never needed
                using (var scope = NewDisposeScope())
                    history.Add((plan[i].To, eval(x, plan[i].To).MoveToOuterDisposeScope()));
                if (history.Count > keep) { history[0].M.Dispose(); history.RemoveAt(0); }
            }
            return x;
        }
        finally
        {
            foreach (var (_, m) in history) m.Dispose();
        }
    }

    /// <summary>ε̂ (noise form) or x̂0 (data form, clipped if asked) at continuous time t; the network sees (t − 1/N)·N.</summary>
    private Tensor ModelOutput(IDenoiser model, Tensor x, double t, bool data)
    {
        using var scope = NewDisposeScope();
        var (eps, x0) = model.EpsAndX0(x, Vp.Step(t, x));
        if (!data) return eps.MoveToOuterDisposeScope();
        return (clip ? x0.Clamp(-1.0, 1.0) : x0).MoveToOuterDisposeScope();
    }

    /// <summary>L, C and ĥ of the update from s to t (see the class summary).</summary>
    private (double L, double C, double Hh) Coefficients(double s, double t)
    {
        double h = Vp.Lambda(t) - Vp.Lambda(s);
        return dataPrediction
            ? (Vp.Sigma(t) / Vp.Sigma(s), Vp.Alpha(t), -h)
            : (Math.Exp(Vp.LogAlpha(t) - Vp.LogAlpha(s)), Vp.Sigma(t), h);
    }

    private Tensor SinglestepUpdate(Tensor x, Step step, Func<Tensor, double, Tensor> eval)
    {
        double s = step.From, t = step.To;
        var (L, C, hh) = Coefficients(s, t);
        double h = Vp.Lambda(t) - Vp.Lambda(s);
        var m0 = eval(x, s);
        if (step.Order == 1) return x.Mul(L) - m0.Mul(C * Phi(1, hh));

        double s1 = step.Inner[0], r1 = (Vp.Lambda(s1) - Vp.Lambda(s)) / h;
        var (L1, C1, hh1) = Coefficients(s, s1);
        var u1 = x.Mul(L1) - m0.Mul(C1 * Phi(1, hh1));
        var d1 = eval(u1, s1) - m0;
        if (step.Order == 2) return x.Mul(L) - m0.Mul(Phi(1, hh)).Add(d1.Mul(Phi(1, hh) / (2 * r1))).Mul(C);

        double s2 = step.Inner[1], r2 = (Vp.Lambda(s2) - Vp.Lambda(s)) / h;
        var (L2, C2, hh2) = Coefficients(s, s2);
        var u2 = x.Mul(L2) - m0.Mul(Phi(1, hh2)).Add(d1.Mul(r2 / r1 * Phi(2, hh2))).Mul(C2);
        var d2 = eval(u2, s2) - m0;
        return x.Mul(L) - m0.Mul(Phi(1, hh)).Add(d2.Mul(Phi(2, hh) / r2)).Mul(C);
    }

    private Tensor MultistepUpdate(Tensor x, List<(double T, Tensor M)> history, Step step)
    {
        var (t0, m0) = history[^1];
        double t = step.To;
        var (L, C, hh) = Coefficients(t0, t);
        double h = Vp.Lambda(t) - Vp.Lambda(t0);
        if (step.Order == 1) return x.Mul(L) - m0.Mul(C * Phi(1, hh));

        var (t1, m1) = history[^2];
        double r0 = (Vp.Lambda(t0) - Vp.Lambda(t1)) / h;
        var d10 = (m0 - m1).Div(r0);
        if (step.Order == 2) return x.Mul(L) - m0.Mul(Phi(1, hh)).Add(d10.Mul(0.5 * Phi(1, hh))).Mul(C);

        var (t2, m2) = history[^3];
        double r1 = (Vp.Lambda(t1) - Vp.Lambda(t2)) / h;
        var d11 = (m1 - m2).Div(r1);
        var dd = d10 - d11;
        var D1 = d10.Add(dd.Mul(r0 / (r0 + r1)));
        var D2 = dd.Mul((ReferenceThirdOrderMultistep ? 1.0 : 2.0) / (r0 + r1));
        return x.Mul(L) - m0.Mul(Phi(1, hh)).Add(D1.Mul(Phi(2, hh))).Add(D2.Mul(Phi(3, hh))).Mul(C);
    }

    /// <summary>
    /// φ₁(z) = e^z − 1, φ₂(z) = φ₁(z)/z − 1, φ₃(z) = φ₂(z)/z − ½, i.e. φ_j(z) = Σ_{k≥1} z^k/(k + j − 1)!;
    /// the series is used for |z| &lt; 0.1, where the closed forms lose digits to cancellation.
    /// </summary>
    internal static double Phi(int j, double z)
    {
        if (Math.Abs(z) < 0.1)
        {
            double sum = 0, term = 1;
            for (int i = 1; i < j; i++) term /= i;                 // 1/(j−1)!
            for (int k = 1; k <= 14; k++) { term *= z / (k + j - 1); sum += term; }
            return sum;
        }
        double p1 = Math.Exp(z) - 1;
        if (j == 1) return p1;
        double p2 = p1 / z - 1;
        return j == 2 ? p2 : p2 / z - 0.5;
    }
}
