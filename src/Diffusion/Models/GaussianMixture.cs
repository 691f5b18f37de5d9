using TorchSharp;
using System.Text.Json;
using System.Text.Json.Serialization;
using Diffusion.Config;
using Diffusion.Schedules;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Models;

/// <summary>
/// An isotropic Gaussian mixture Σ_k π_k N(μ_k, s_k² I) in any dimension, with the schedule of the
/// diffusion it is noised by. It is both a data source and (through <see cref="GaussianMixtureDenoiser"/>)
/// an exact model whose score is known in closed form. JSON form (a <c>gmm:SPEC.json</c> file):
/// <c>{"weights":[…], "means":[[…], …], "stds":[…], "schedule":{"name":"linear","T":1000}}</c>.
/// </summary>
public sealed class GaussianMixture
{
    public double[] Weights { get; }
    public double[][] Means { get; }
    public double[] Stds { get; }
    public int Dim => Means[0].Length;
    public int Components => Weights.Length;

    public GaussianMixture(double[] weights, double[][] means, double[] stds)
    {
        if (weights.Length == 0) throw new UserError("Gaussian mixture: expected at least one component");
        if (means.Length != weights.Length || stds.Length != weights.Length)
            throw new UserError($"Gaussian mixture: weights, means and stds must have the same length (got {weights.Length}, {means.Length}, {stds.Length})");
        if (means.Any(m => m is null || m.Length == 0 || m.Length != means[0].Length))
            throw new UserError("Gaussian mixture: every mean must be a non-empty list of the same length");
        if (weights.Any(w => !(w > 0) || double.IsInfinity(w))) throw new UserError("Gaussian mixture: every weight must be positive and finite");
        if (stds.Any(s => !(s >= 0) || double.IsInfinity(s))) throw new UserError("Gaussian mixture: every std must be zero or more and finite");
        if (means.Any(m => m.Any(v => !double.IsFinite(v)))) throw new UserError("Gaussian mixture: every mean must be finite");
        double sum = weights.Sum();
        Weights = weights.Select(w => w / sum).ToArray();
        Means = means.Select(m => (double[])m.Clone()).ToArray();
        Stds = (double[])stds.Clone();
    }

    /// <summary>Draws n points (float64, [n, D]) with the generator.</summary>
    public Tensor Sample(int n, Generator? gen)
    {
        var (x, k) = SampleWithComponents(n, gen);
        k.Dispose();
        return x;
    }

    /// <summary>Draws n points (float64, [n, D]) and the component each came from (int64, [n]); the points are those of <see cref="Sample"/>.</summary>
    public (Tensor X, Tensor Components) SampleWithComponents(int n, Generator? gen)
    {
        using var scope = NewDisposeScope();
        using var w = tensor(Weights, dtype: ScalarType.Float64);
        var k = multinomial(w, n, replacement: true, generator: gen);
        var mu = tensor(Means.SelectMany(m => m).ToArray(), dtype: ScalarType.Float64).reshape(Components, Dim).index_select(0, k);
        var s = tensor(Stds, dtype: ScalarType.Float64).index_select(0, k).unsqueeze(1);
        var x = mu.Add(s * randn([n, Dim], dtype: ScalarType.Float64, generator: gen));
        return (x.MoveToOuterDisposeScope(), k.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// ∇ log p_t(x) for the noised mixture p_t = Σ π_k N(α μ_k, (α² s_k² + σ²) I), with α, σ given per
    /// row as [N, 1] tensors (or scalars). Computed in x's dtype.
    /// </summary>
    public Tensor Score(Tensor x, Tensor alpha, Tensor sigma)
    {
        using var scope = NewDisposeScope();
        var (resp, diff, var_) = Posterior(x, alpha, sigma);
        // ∇ log p = Σ_k r_k · (−(x − α μ_k) / v_k)
        var g = -(resp.unsqueeze(-1) * diff / var_.unsqueeze(-1)).sum(1);
        return g.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// ∇ log p_t(x | k) for the noised component k of each row, N(α μ_k, (α² s_k² + σ²) I): −(x − α μ_k)/(α² s_k² + σ²);
    /// <paramref name="components"/> is int64 [N] with values 0 … K−1.
    /// </summary>
    public Tensor ComponentScore(Tensor x, Tensor alpha, Tensor sigma, Tensor components)
    {
        using var scope = NewDisposeScope();
        var dt = x.dtype;
        var mu = tensor(Means.SelectMany(m => m).ToArray(), dtype: dt).reshape(Components, Dim).index_select(0, components);
        var s2 = tensor(Stds.Select(s => s * s).ToArray(), dtype: dt).index_select(0, components).reshape(-1, 1);
        var a = alpha.to_type(dt).reshape(-1, 1);
        var sg = sigma.to_type(dt).reshape(-1, 1);
        return (-(x - a * mu) / (a * a * s2).Add(sg * sg)).MoveToOuterDisposeScope();
    }

    /// <summary>log p_t(x) of each row under the noised mixture (α = 1, σ = 0 gives the data density).</summary>
    public Tensor LogDensity(Tensor x, Tensor alpha, Tensor sigma)
    {
        using var scope = NewDisposeScope();
        var (logits, _, _) = Components_(x, alpha, sigma);
        return logits.logsumexp(1).MoveToOuterDisposeScope();
    }

    private (Tensor Resp, Tensor Diff, Tensor Var) Posterior(Tensor x, Tensor alpha, Tensor sigma)
    {
        var (logits, diff, var_) = Components_(x, alpha, sigma);
        return (softmax(logits, 1), diff, var_);
    }

    // log π_k + log N(x; α μ_k, v_k I) per row and component, the differences x − α μ_k and v_k.
    private (Tensor Logits, Tensor Diff, Tensor Var) Components_(Tensor x, Tensor alpha, Tensor sigma)
    {
        var dt = x.dtype;
        var mu = tensor(Means.SelectMany(m => m).ToArray(), dtype: dt).reshape(1, Components, Dim);
        var s2 = tensor(Stds.Select(s => s * s).ToArray(), dtype: dt).reshape(1, Components);
        var a = alpha.to_type(dt).reshape(-1, 1);
        var sg = sigma.to_type(dt).reshape(-1, 1);
        var var_ = (a * a * s2).Add(sg * sg);                                  // [N or 1, K]
        var diff = x.unsqueeze(1) - a.unsqueeze(-1) * mu;                   // [N, K, D]
        var sq = diff.Pow(2L).sum(-1);                                      // [N, K]
        var logw = tensor(Weights.Select(w => Math.Log(w)).ToArray(), dtype: dt).reshape(1, Components);
        var logits = logw - var_.Mul(2 * Math.PI).log().Mul(0.5 * Dim) - sq / var_.Mul(2L);
        return (logits, diff, var_.expand(x.shape[0], Components));
    }

    // ---- JSON ----

    private sealed class SpecJson
    {
        [JsonPropertyName("weights")] public double[]? Weights { get; set; }
        [JsonPropertyName("means")] public double[][]? Means { get; set; }
        [JsonPropertyName("stds")] public double[]? Stds { get; set; }
        [JsonPropertyName("schedule")] public ScheduleJson? Schedule { get; set; }
    }

    private sealed class ScheduleJson
    {
        [JsonPropertyName("name")] public string? Name { get; set; }
        [JsonPropertyName("T")] public int? T { get; set; }
        [JsonPropertyName("betas")] public double[]? Betas { get; set; }
    }

    /// <summary>Reads a mixture and its schedule from a SPEC.json file; every problem is one line naming the file.</summary>
    public static (GaussianMixture Mixture, ScheduleConfig Schedule) Load(string path)
    {
        if (!File.Exists(path)) throw new UserError($"gmm:{path}: file not found");
        SpecJson? spec;
        try
        {
            spec = JsonSerializer.Deserialize<SpecJson>(File.ReadAllText(path),
                new JsonSerializerOptions { UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow, ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException e) { throw new UserError($"gmm:{path}: not a valid mixture spec ({e.Message.ReplaceLineEndings(" ")})"); }
        if (spec?.Weights is null || spec.Means is null || spec.Stds is null)
            throw new UserError($"gmm:{path}: expected {{\"weights\":[…], \"means\":[[…], …], \"stds\":[…], \"schedule\":{{\"name\":\"linear\",\"T\":1000}}}}");
        GaussianMixture gmm;
        try { gmm = new GaussianMixture(spec.Weights, spec.Means, spec.Stds); }
        catch (UserError e) { throw new UserError($"gmm:{path}: {e.Message}"); }
        var sc = new ScheduleConfig
        {
            Name = spec.Schedule?.Name ?? "linear",
            Timesteps = spec.Schedule?.T ?? 1000,
            Betas = spec.Schedule?.Betas,
        };
        if (sc.Betas is not null && spec.Schedule?.Name is null) sc.Name = "custom";
        try { sc.Validate(); }
        catch (ConfigException e) { throw new UserError($"gmm:{path}: {e.Message}"); }
        return (gmm, sc);
    }

    public string ToJson(ScheduleConfig schedule)
    {
        var o = new SpecJson
        {
            Weights = Weights, Means = Means, Stds = Stds,
            Schedule = new ScheduleJson { Name = schedule.Name, T = schedule.Name == "custom" ? null : schedule.Timesteps, Betas = schedule.Betas },
        };
        return JsonSerializer.Serialize(o, new JsonSerializerOptions { WriteIndented = false, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull });
    }
}

/// <summary>
/// The exact ε-predictor of a Gaussian-mixture data distribution (METHODS.md §6):
/// ε*(x_t) = −σ_t·∇log p_t(x_t), at the noise level (α, σ) the time step carries — so it is exact at any noise
/// level a sampler asks about, integer, real-valued or continuous. The step's network time is not used. It
/// consumes no randomness.
/// <para>
/// Made <paramref name="conditional"/>, it is the exact class-conditional model with one class per component: label
/// k gives ε*(x_t | k) = −σ_t·∇log p_t(x_t | k) of component k alone, and the null class K (or no labels) the full
/// mixture — the unconditional model classifier-free guidance pairs it with.
/// </para>
/// </summary>
public sealed class GaussianMixtureDenoiser(GaussianMixture mixture, NoiseSchedule schedule, bool conditional = false) : IDenoiser
{
    /// <summary>The number of components when conditional (label K = the full mixture), else 0.</summary>
    public int Classes => conditional ? Mixture.Components : 0;

    public GaussianMixture Mixture { get; } = mixture;
    /// <summary>The schedule the mixture is noised by (samplers of this model use it).</summary>
    public NoiseSchedule Schedule { get; } = schedule;
    public Prediction Prediction => Prediction.Epsilon;

    /// <summary>Number of calls so far (each call is one function evaluation for the whole batch).</summary>
    public int Evaluations { get; private set; }

    public Tensor Predict(Tensor x, TimeStep step) => Predict(x, step, null);

    public Tensor Predict(Tensor x, TimeStep step, Tensor? labels)
    {
        if (labels is not null && !conditional) throw new InvalidOperationException("this exact mixture model is not conditional; it takes no labels");
        Evaluations++;
        using var scope = NewDisposeScope();
        var alpha = step.Alpha.to_type(x.dtype).reshape(-1, 1);
        var sigma = step.Sigma.to_type(x.dtype).reshape(-1, 1);
        var score = Mixture.Score(x, alpha, sigma);
        if (labels is not null)
        {
            using var nullClass = Classes.ToScalar();
            using var lastClass = (Classes - 1).ToScalar();
            var isNull = labels.eq(nullClass).reshape(-1, 1);
            var component = Mixture.ComponentScore(x, alpha, sigma, labels.clamp_max(lastClass));
            score = where(isNull, score, component);
        }
        return (-sigma * score).MoveToOuterDisposeScope();
    }
}
