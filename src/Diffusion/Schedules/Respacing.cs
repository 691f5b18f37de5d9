namespace Diffusion.Schedules;

/// <summary>Which of the T training steps a sampler visits when it uses fewer steps.</summary>
public static class Respacing
{
    public static readonly string[] Names = ["ddim-stride", "uniform", "quadratic"];

    /// <summary>The <c>spacing</c> option of the discrete samplers (ddpm, ddim).</summary>
    public static readonly Sampling.SamplerOption Option = new("spacing", "ddpm/ddim: which steps: ddim-stride, uniform (default) or quadratic", Choices: Names);

    /// <summary>
    /// The ascending list of <paramref name="steps"/> timesteps in [0, T) chosen by <paramref name="spacing"/>:
    /// <list type="bullet">
    /// <item><c>ddim-stride</c>: range(0, T, s) for the smallest integer stride s giving exactly N values (the DDIM code's choice); an error when no stride does.</item>
    /// <item><c>uniform</c>: linspace(0, T−1, N) rounded half to even (as numpy does).</item>
    /// <item><c>quadratic</c>: floor(linspace(0, √(0.8·T), N)²) (DDIM's "quad" skip); an error when two steps coincide.</item>
    /// </list>
    /// </summary>
    public static int[] Timesteps(string spacing, int T, int steps)
    {
        if (steps < 1) throw new UserError($"--steps must be at least 1, got {steps}");
        if (steps > T) throw new UserError($"--steps {steps} exceeds the schedule's T = {T}");
        int[] r;
        switch (spacing)
        {
            case "ddim-stride":
                for (int s = 1; s <= T; s++)
                {
                    int count = (T + s - 1) / s;
                    if (count == steps) return Enumerable.Range(0, count).Select(i => i * s).ToArray();
                    if (count < steps) break;
                }
                throw new UserError($"spacing ddim-stride: no integer stride gives exactly {steps} steps out of T = {T}; use --spacing uniform or another step count");
            case "uniform":
                r = NoiseSchedule.Linspace(0, T - 1, steps).Select(v => (int)Math.Round(v, MidpointRounding.ToEven)).ToArray();
                break;
            case "quadratic":
                r = NoiseSchedule.Linspace(0, Math.Sqrt(T * 0.8), steps).Select(v => (int)(v * v)).ToArray();
                break;
            default:
                throw new UserError($"unknown spacing '{spacing}': expected one of {string.Join(", ", Names)}");
        }
        if (r.Distinct().Count() != r.Length)
            throw new UserError($"spacing {spacing}: {steps} steps out of T = {T} gives repeated timesteps; use fewer steps or another spacing");
        return r;
    }
}
