using Diffusion.Models;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Data;

/// <summary>
/// Two-dimensional toy distributions, drawn with their own seeded generator (option <c>seed</c>,
/// default 0) so that the dataset does not depend on the training seed. Options are given after the
/// name: <c>toy:moons?n=20000&amp;noise=0.1</c>. All are roughly centred with unit scale.
/// </summary>
public static class Toy2D
{
    public static readonly string[] Names = ["gmm-grid", "moons", "swiss-roll", "rings"];

    /// <summary>The 7×7 grid of Gaussians: means on {−1.5, −1, …, 1.5}², equal weights, std <paramref name="std"/> (default 0.05).</summary>
    public static GaussianMixture Grid(int side = 7, double spacing = 0.5, double std = 0.05)
    {
        var means = new List<double[]>();
        double c = (side - 1) / 2.0;
        for (int i = 0; i < side; i++)
            for (int j = 0; j < side; j++)
                means.Add([(i - c) * spacing, (j - c) * spacing]);
        return new GaussianMixture(Enumerable.Repeat(1.0, means.Count).ToArray(), means.ToArray(), Enumerable.Repeat(std, means.Count).ToArray());
    }

    /// <summary><c>toy:NAME?options</c>.</summary>
    public static Dataset FromSpec(DataRequest request)
    {
        var (name, opts) = DataSources.Options(request.Arg);
        return Load(name, opts, request.Spec);
    }

    public static Dataset Load(string name, IReadOnlyDictionary<string, string> options, string spec)
    {
        var opts = new SpecOptions(spec, options);
        int n = opts.Int("n", 50_000);
        long seed = opts.Long("seed", 0);
        if (n < 1) throw new UserError($"{spec}: n must be positive, got {n}");
        using var gen = new Generator((ulong)seed);
        Dataset ds;
        switch (name)
        {
            case "gmm-grid":
            {
                var gmm = Grid(std: opts.Double("std", 0.05));
                opts.Done();
                var (x, k) = gmm.SampleWithComponents(n, gen);
                using (x)
                using (k)
                    ds = new Dataset(spec, x.to_type(ScalarType.Float32), k.clone(), mixture: gmm); // label: the component
                break;
            }
            case "moons":
            {
                double noise = opts.Double("noise", 0.05);
                opts.Done();
                ds = new Dataset(spec, Moons(n, noise, gen));
                break;
            }
            case "swiss-roll":
            {
                double noise = opts.Double("noise", 0.05);
                opts.Done();
                ds = new Dataset(spec, SwissRoll(n, noise, gen));
                break;
            }
            case "rings":
            {
                double noise = opts.Double("noise", 0.03);
                opts.Done();
                ds = new Dataset(spec, Rings(n, noise, gen));
                break;
            }
            default:
                throw new UserError($"{spec}: unknown toy dataset '{name}'; expected one of {string.Join(", ", Names.Select(x => "toy:" + x))}");
        }
        return ds;
    }

    /// <summary>Two interleaving half circles, centred: (cos θ, sin θ) and (1 − cos θ, 0.5 − sin θ), θ ~ U[0, π], shifted by (−0.5, −0.25), plus Gaussian noise.</summary>
    public static Tensor Moons(int n, double noise, Generator gen)
    {
        using var scope = NewDisposeScope();
        var theta = rand(n, dtype: ScalarType.Float64, generator: gen).Mul(Math.PI);
        var which = rand(n, dtype: ScalarType.Float64, generator: gen).Lt(0.5);
        var xa = cos(theta); var ya = sin(theta);
        var xb = cos(theta).RSub(1L); var yb = sin(theta).RSub(0.5);
        var x = where(which, xa, xb).Sub(0.5);
        var y = where(which, ya, yb).Sub(0.25);
        var pts = stack([x, y], 1).Add(randn([n, 2], dtype: ScalarType.Float64, generator: gen).Mul(noise));
        return pts.to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>The 2-D Swiss roll: θ = 1.5π(1 + 2u), (θ cos θ, θ sin θ)/5, plus Gaussian noise.</summary>
    public static Tensor SwissRoll(int n, double noise, Generator gen)
    {
        using var scope = NewDisposeScope();
        var theta = rand(n, dtype: ScalarType.Float64, generator: gen).Mul(2L).Add(1L).Mul(1.5 * Math.PI);
        var pts = stack([theta * cos(theta), theta * sin(theta)], 1).Div(5.0).Add(randn([n, 2], dtype: ScalarType.Float64, generator: gen).Mul(noise));
        return pts.to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>Three concentric circles of radius 0.5, 1 and 1.5, equally likely, plus Gaussian noise.</summary>
    public static Tensor Rings(int n, double noise, Generator gen)
    {
        using var scope = NewDisposeScope();
        var ring = randint(0, 3, [n], dtype: ScalarType.Int64, generator: gen).to_type(ScalarType.Float64);
        var radius = ring.Add(1L).Mul(0.5);
        var theta = rand(n, dtype: ScalarType.Float64, generator: gen).Mul(2 * Math.PI);
        var pts = stack([radius * cos(theta), radius * sin(theta)], 1).Add(randn([n, 2], dtype: ScalarType.Float64, generator: gen).Mul(noise));
        return pts.to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }
}

/// <summary>Typed access to <c>?key=value</c> options of a data spec; unknown keys are an error.</summary>
internal sealed class SpecOptions(string spec, IReadOnlyDictionary<string, string> options)
{
    private readonly HashSet<string> used = [];

    public int Int(string key, int def) => Get(key, def, s => int.TryParse(s, out var v) ? v : null, "an integer");
    public long Long(string key, long def) => Get(key, def, s => long.TryParse(s, out var v) ? v : null, "an integer");
    public double Double(string key, double def) => Get(key, def, s => double.TryParse(s, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) ? v : null, "a number");

    public string? String(string key)
    {
        used.Add(key);
        return options.TryGetValue(key, out var s) ? s : null;
    }

    private T Get<T>(string key, T def, Func<string, T?> parse, string what) where T : struct
    {
        used.Add(key);
        if (!options.TryGetValue(key, out var s)) return def;
        return parse(s) ?? throw new UserError($"{spec}: option {key}={s} is not {what}");
    }

    /// <summary>Throws if an option was given that nothing asked for.</summary>
    public void Done()
    {
        var unknown = options.Keys.Where(k => !used.Contains(k)).ToList();
        if (unknown.Count > 0) throw new UserError($"{spec}: unknown option '{unknown[0]}'; expected one of {string.Join(", ", used)}");
    }
}
