using Diffusion.Schedules;

namespace Diffusion.Config;

/// <summary>
/// The whole configuration of a run: one typed record, written into every checkpoint so that
/// sampling and evaluation never need the training flags repeated. Keys are kebab-case in JSON and
/// TOML (<c>model.channel-mult</c>, <c>train.batch-size</c>) and in <c>--set key=value</c>.
/// </summary>
public sealed class RunConfig
{
    public DataConfig Data { get; set; } = new();
    public ScheduleConfig Schedule { get; set; } = new();
    public ModelConfig Model { get; set; } = new();
    public TrainConfig Train { get; set; } = new();
    public EmaConfig Ema { get; set; } = new();
    public SampleConfig Sample { get; set; } = new();

    // The five remedies (METHODS.md §1–§5); all off by default, any combination may be on.
    public PerturbationConfig Perturbation { get; set; } = new();
    public LossConfig Loss { get; set; } = new();
    public P2Config P2 { get; set; } = new();
    public MinSnrConfig MinSnr { get; set; } = new();
    public TimeSharingConfig TimeSharing { get; set; } = new();
    public ConsistencyConfig Consistency { get; set; } = new();
    public SmdConfig Smd { get; set; } = new();

    /// <summary>
    /// Checks every value a user can set; throws <see cref="ConfigException"/> naming the key.
    /// <see cref="ConfigLoader.FromTree"/> calls it, so every loaded config is valid and the code that
    /// uses one does not check again; call it yourself after changing a config by hand.
    /// </summary>
    public void Validate()
    {
        Schedule.Validate();
        Model.Validate();
        Train.Validate();
        Ema.Validate();
        Sample.Validate();
        Perturbation.Validate();
        Loss.Validate();
        P2.Validate();
        MinSnr.Validate();
        TimeSharing.Validate(Schedule.Length);
        if (!(Sample.EpsScaleB + Sample.EpsScaleK * (Schedule.Length - 1) > 0))
            throw new ConfigException($"sample.eps-scale-k: λ_t = {Sample.EpsScaleK}·t + {Sample.EpsScaleB} must stay positive up to t = {Schedule.Length - 1}");
        Consistency.Validate(Train.BatchSize);
        Smd.Validate(Model.Type);
        if (Train.LabelDropout is not null && !Model.Conditional)
            throw new ConfigException("train.label-dropout: applies to a class-conditional model; set model.num-classes too");
        if (Sample.Guidance != 0 && !Model.Conditional)
            throw new ConfigException("sample.guidance: applies to a class-conditional model; set model.num-classes too");
    }

    /// <summary>The remedies switched on, described with their settings (empty for the baseline); see <see cref="Training.Remedies"/>.</summary>
    public IReadOnlyList<string> ActiveRemedies() => Training.Remedies.Active(this);
}

/// <summary>Input perturbation (DDPM-IP, METHODS.md §1): the network sees √ᾱ·x0 + √(1−ᾱ)·(ε + γξ), the target stays ε.</summary>
public sealed class PerturbationConfig
{
    /// <summary>γ; 0 = off. The paper's default when on is 0.1 (its CIFAR-10 script uses 0.15).</summary>
    public double Gamma { get; set; }

    public void Validate()
    {
        if (!(Gamma >= 0) || double.IsInfinity(Gamma)) throw new ConfigException($"perturbation.gamma: expected 0 (off) or a positive number, got {Gamma}");
    }
}

/// <summary>Per-example weighting of the ε-error (METHODS.md §2).</summary>
public sealed class LossConfig
{
    public static readonly string[] Weightings = ["constant", "snr", "p2", "min-snr", "debiased"];

    /// <summary>constant (baseline), snr (1/SNR, = x0-MSE), p2 (1/(k+SNR)^γ), min-snr (min(SNR,γ)/SNR), debiased (1/√SNR).</summary>
    public string Weighting { get; set; } = "constant";

    public void Validate()
    {
        if (!Weightings.Contains(Weighting)) throw new ConfigException($"loss.weighting: expected one of {string.Join(", ", Weightings)}, got '{Weighting}'");
    }
}

/// <summary>Parameters of the P2 weighting 1/(k + SNR)^γ (debiased = P2 with k = 0, γ = ½).</summary>
public sealed class P2Config
{
    public double K { get; set; } = 1.0;
    public double Gamma { get; set; } = 1.0;

    public void Validate()
    {
        if (!(K >= 0)) throw new ConfigException($"p2.k: expected zero or more, got {K}");
        if (!(Gamma >= 0)) throw new ConfigException($"p2.gamma: expected zero or more, got {Gamma}");
    }
}

/// <summary>Parameter of the Min-SNR weighting min(SNR, γ)/SNR.</summary>
public sealed class MinSnrConfig
{
    public double Gamma { get; set; } = 5.0;

    public void Validate()
    {
        if (!(Gamma > 0)) throw new ConfigException($"min-snr.gamma: expected a positive number, got {Gamma}");
    }
}

/// <summary>E-TSDM (METHODS.md §3): the time condition is shared within n sub-intervals of [0, t̃).</summary>
public sealed class TimeSharingConfig
{
    /// <summary>n, the number of sub-intervals; 0 = off (5 is the default when on).</summary>
    public int Intervals { get; set; }
    /// <summary>t̃ in the network's time units; unset = T/10.</summary>
    public double? Threshold { get; set; }

    public double ThresholdFor(int T) => Threshold ?? T / 10.0;

    public void Validate(int T)
    {
        if (Intervals < 0) throw new ConfigException($"time-sharing.intervals: expected 0 (off) or a positive number, got {Intervals}");
        if (Threshold is double th && !(th > 0 && th <= T)) throw new ConfigException($"time-sharing.threshold: expected a value in (0, T = {T}], got {th}");
    }
}

/// <summary>Consistency regularisation with bootstrapping (METHODS.md §4).</summary>
public sealed class ConsistencyConfig
{
    /// <summary>λ, the weight of the MMD² term; 0 = off (1 is the default when on).</summary>
    public double Weight { get; set; }
    /// <summary>L, the largest number of unrolled model steps k ~ U{1 … L}.</summary>
    public int MaxSteps { get; set; } = 5;

    public void Validate(int batchSize)
    {
        if (!(Weight >= 0)) throw new ConfigException($"consistency.weight: expected 0 (off) or a positive number, got {Weight}");
        if (MaxSteps < 1) throw new ConfigException($"consistency.max-steps: expected at least 1, got {MaxSteps}");
        if (Weight > 0 && batchSize < 4) throw new ConfigException($"consistency.weight: the regulariser splits the batch in two halves of at least 2; train.batch-size must be at least 4, got {batchSize}");
    }
}

/// <summary>Soft mixture denoising (METHODS.md §5): a latent z = g_ξ(x_t, η, t) conditions the denoiser through hypernetwork layers.</summary>
public sealed class SmdConfig
{
    public bool Enabled { get; set; }
    /// <summary>Latent channels per pixel (images) or latent size (vectors); unset = 100 for the UNet, 16 for the MLP.</summary>
    public int? LatentDim { get; set; }
    /// <summary>Hypernetwork-conditioned layers: 1 (after the input layer) or 2 (also after the last residual block); the MLP accepts up to blocks + 1.</summary>
    public int HyperLayers { get; set; } = 2;

    public int LatentDimFor(string modelType) => LatentDim ?? (modelType == "unet" ? 100 : 16);

    public void Validate(string modelType)
    {
        if (LatentDim is int d && d < 1) throw new ConfigException($"smd.latent-dim: expected a positive number, got {d}");
        if (HyperLayers < 1) throw new ConfigException($"smd.hyper-layers: expected at least 1, got {HyperLayers}");
        if (modelType == "unet" && HyperLayers > 2) throw new ConfigException($"smd.hyper-layers: the UNet has hyper layers after its input convolution and after its last residual block (1 or 2), got {HyperLayers}");
    }
}

public sealed class DataConfig
{
    /// <summary>Data source: a spec of one of the kinds of <see cref="Data.DataKinds"/> (toy:moons, fashion-mnist, images:DIR, npy:FILE, …).</summary>
    public string Spec { get; set; } = "toy:gmm-grid";
    /// <summary>Folder holding the dataset's files (Fashion-MNIST IDX files, the mnist package's digits).</summary>
    public string? DataDir { get; set; }
    /// <summary>Random horizontal flips of training images.</summary>
    public bool HorizontalFlip { get; set; }
    /// <summary>Side of the square images for images:DIR (resize the short side, centre-crop).</summary>
    public int ImageSize { get; set; } = 32;
    /// <summary>Channels for images:DIR: 0 = from the files (1 if all are gray, else 3), or 1 or 3.</summary>
    public int Channels { get; set; }
    /// <summary>Use at most this many training examples (0 = all).</summary>
    public int Limit { get; set; }
}

public sealed class ScheduleConfig
{
    /// <summary>linear, cosine, scaled-linear, sigmoid or custom (with <see cref="Betas"/>).</summary>
    public string Name { get; set; } = "linear";
    /// <summary>Number of diffusion steps T.</summary>
    public int Timesteps { get; set; } = 1000;
    /// <summary>Explicit β list for name = custom.</summary>
    public double[]? Betas { get; set; }

    public void Validate()
    {
        string[] names = ["linear", "cosine", "scaled-linear", "sigmoid", "custom"];
        if (!names.Contains(Name)) throw new ConfigException($"schedule.name: expected one of {string.Join(", ", names)}, got '{Name}'");
        if (Name == "custom")
        {
            if (Betas is null || Betas.Length < 2) throw new ConfigException("schedule.betas: a custom schedule needs a list of at least two β values");
            if (Betas.Any(b => !(b > 0 && b <= 1))) throw new ConfigException("schedule.betas: every β must lie in (0, 1]");
        }
        else if (Timesteps < 2) throw new ConfigException($"schedule.timesteps: expected at least 2, got {Timesteps}");
    }

    /// <summary>
    /// The schedule this config describes. The config was validated when it was loaded (or, for a
    /// mixture spec, by <c>GaussianMixture.Load</c>); only a name that cannot be built is refused here,
    /// with <see cref="Validate"/>'s message, and the schedule checks its own T and β.
    /// </summary>
    public NoiseSchedule Build() => Name switch
    {
        "linear" => NoiseSchedule.Linear(Timesteps),
        "cosine" => NoiseSchedule.Cosine(Timesteps),
        "scaled-linear" => NoiseSchedule.ScaledLinear(Timesteps),
        "sigmoid" => NoiseSchedule.Sigmoid(Timesteps),
        "custom" when Betas is not null => new NoiseSchedule(Betas),
        _ => Unbuildable(),
    };

    private NoiseSchedule Unbuildable()
    {
        Validate();
        throw new ConfigException($"schedule.name: cannot build '{Name}'");
    }

    /// <summary>The number of steps the built schedule has.</summary>
    public int Length => Name == "custom" ? Betas?.Length ?? 0 : Timesteps;
}

public sealed class ModelConfig
{
    /// <summary>unet (images) or mlp (vectors).</summary>
    public string Type { get; set; } = "mlp";
    /// <summary>What the network predicts: eps, x0 or v.</summary>
    public string Prediction { get; set; } = "eps";

    // UNet
    public int Channels { get; set; } = 64;
    public int[] ChannelMult { get; set; } = [1, 2, 2];
    public int ResBlocks { get; set; } = 2;
    /// <summary>Feature-map sides (in pixels) at which self-attention is applied, e.g. [14] for 28×28 input.</summary>
    public int[] AttentionResolutions { get; set; } = [14];
    /// <summary>Channels per attention head.</summary>
    public int HeadChannels { get; set; } = 32;
    public int NormGroups { get; set; } = 32;
    public double Dropout { get; set; } = 0.1;

    // MLP
    public int Hidden { get; set; } = 256;
    public int Blocks { get; set; } = 4;
    public int TimeEmbedDim { get; set; } = 128;
    /// <summary>
    /// MLP: 0 (the default) feeds the coordinates in as they are; a positive even number feeds each coordinate in as
    /// a sinusoidal embedding of that size of <see cref="InputEmbedScale"/>·x (Fourier features: a plain MLP is slow
    /// to learn the sharp score of many small, close modes; tiny-diffusion's 2-D model embeds its inputs this way).
    /// Not written when 0, so configs and checkpoints without it are unchanged.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public int InputEmbedDim { get; set; }
    /// <summary>MLP: the factor on x before its sinusoidal embedding (model.input-embed-dim &gt; 0); null = 25.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public double? InputEmbedScale { get; set; }
    /// <summary>The input embedding's scale in effect.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public double EffectiveInputEmbedScale => InputEmbedScale ?? 25.0;

    // Class conditioning (classifier-free guidance, Ho & Salimans 2022)
    /// <summary>
    /// Number of classes of a class-conditional model (a learned class embedding, with one more row for the null
    /// class, added to the time embedding); 0 = unconditional, the default. Not written when 0, so unconditional
    /// configs and checkpoints are unchanged.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public int NumClasses { get; set; }
    /// <summary>The classes' names (index = label), taken from the training data when it names them; null when unnamed.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string[]? ClassNames { get; set; }

    /// <summary>
    /// Whether the model is class-conditional (not a setting: it follows <see cref="NumClasses"/>; configs written
    /// before 2026-12-04 hold it as model.conditional, which <see cref="ConfigLoader.FromTree"/> accepts when it agrees).
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool Conditional => NumClasses > 0;

    /// <summary>The name of class <paramref name="k"/> (its number when the classes are unnamed).</summary>
    public string ClassName(int k) => ClassNames is { } n && k < n.Length ? n[k] : k.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public void Validate()
    {
        if (NumClasses < 0) throw new ConfigException($"model.num-classes: expected 0 (unconditional) or a positive number, got {NumClasses}");
        if (ClassNames is not null && ClassNames.Length != NumClasses)
            throw new ConfigException($"model.class-names: {ClassNames.Length} names for model.num-classes = {NumClasses}; expected one name per class");
        if (Type != "unet" && Type != "mlp") throw new ConfigException($"model.type: expected unet or mlp, got '{Type}'");
        if (Prediction != "eps" && Prediction != "x0" && Prediction != "v") throw new ConfigException($"model.prediction: expected eps, x0 or v, got '{Prediction}'");
        if (Dropout < 0 || Dropout >= 1) throw new ConfigException($"model.dropout: expected a value in [0, 1), got {Dropout}");
        if (Type == "unet")
        {
            if (Channels < 1) throw new ConfigException($"model.channels: expected a positive number, got {Channels}");
            if (ChannelMult.Length == 0 || ChannelMult.Any(m => m < 1)) throw new ConfigException("model.channel-mult: expected a non-empty list of positive integers");
            if (ResBlocks < 1) throw new ConfigException($"model.res-blocks: expected at least 1, got {ResBlocks}");
            if (HeadChannels < 1) throw new ConfigException($"model.head-channels: expected a positive number, got {HeadChannels}");
            if (NormGroups < 1) throw new ConfigException($"model.norm-groups: expected a positive number, got {NormGroups}");
        }
        else
        {
            if (Hidden < 1) throw new ConfigException($"model.hidden: expected a positive number, got {Hidden}");
            if (Blocks < 0) throw new ConfigException($"model.blocks: expected zero or more, got {Blocks}");
            if (InputEmbedDim < 0 || InputEmbedDim % 2 != 0) throw new ConfigException($"model.input-embed-dim: expected 0 (off) or an even number ≥ 2, got {InputEmbedDim}");
            if (InputEmbedScale is { } s && !(s > 0 && double.IsFinite(s))) throw new ConfigException($"model.input-embed-scale: expected a positive number, got {s}");
        }
        if (Type == "unet" && (InputEmbedDim != 0 || InputEmbedScale is not null))
            throw new ConfigException("model.input-embed-dim / model.input-embed-scale: only the MLP (model.type = mlp) embeds its input");
        if (TimeEmbedDim < 2 || TimeEmbedDim % 2 != 0) throw new ConfigException($"model.time-embed-dim: expected an even number ≥ 2, got {TimeEmbedDim}");
    }
}

public sealed class TrainConfig
{
    /// <summary>Total optimisation steps of the run (--steps).</summary>
    public int Steps { get; set; } = 5000;
    public int BatchSize { get; set; } = 256;
    public double Lr { get; set; } = 1e-3;
    /// <summary>AdamW's decoupled weight decay (explicit: TorchSharp's default is 0).</summary>
    public double WeightDecay { get; set; } = 0.0;
    public double AdamBeta1 { get; set; } = 0.9;
    public double AdamBeta2 { get; set; } = 0.999;
    /// <summary>Linear learning-rate warm-up from 0 over this many steps.</summary>
    public int WarmupSteps { get; set; } = 100;
    /// <summary>After warm-up: constant, or cosine decay to zero at the last step.</summary>
    public string LrSchedule { get; set; } = "constant";
    /// <summary>Gradient-norm clipping threshold (0 = off).</summary>
    public double GradClip { get; set; } = 1.0;
    public long Seed { get; set; } = 0;
    public int LogEvery { get; set; } = 10;
    /// <summary>Write a sample grid every this many steps (0 = only at the end).</summary>
    public int SampleEvery { get; set; } = 0;
    public int CheckpointEvery { get; set; } = 500;
    /// <summary>
    /// Previous checkpoints kept when a new one is written: 1 keeps <c>checkpoint.prev.ckpt</c>, K &gt; 1 keeps the
    /// last K as <c>checkpoint.step-NNNNNNN.ckpt</c>, 0 keeps none.
    /// </summary>
    public int KeepCheckpoints { get; set; } = 1;
    /// <summary>libtorch CPU threads (0 = libtorch's default).</summary>
    public int Threads { get; set; } = 0;
    /// <summary>
    /// float32, bf16-mixed (convolutions, linear layers and attention in bfloat16, everything kept in float32), or auto:
    /// bf16-mixed for the UNet on a CPU with native bfloat16, float32 otherwise. A new run saves what auto chose.
    /// </summary>
    public string Precision { get; set; } = Models.Precisions.Auto;
    /// <summary>
    /// A safetensors file (<c>diffusion export</c>) the new run's model and EMA start from (--init-weights); kept in the
    /// config as a record only: a resumed run continues from its checkpoint and does not read it again.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? InitWeights { get; set; }
    /// <summary>
    /// Classifier-free guidance's label dropout p: each training example's label is replaced by the null class with
    /// probability p, so that one network learns both ε(x, c) and ε(x, ∅). Null: 0.1 for a conditional model
    /// (<see cref="LabelDropoutFor"/>); only a conditional model may set it.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public double? LabelDropout { get; set; }

    /// <summary>The label dropout in effect: train.label-dropout, else 0.1 for a conditional model, 0 otherwise.</summary>
    public double LabelDropoutFor(ModelConfig model) => model.Conditional ? LabelDropout ?? 0.1 : 0.0;

    public void Validate()
    {
        if (Steps < 0) throw new ConfigException($"train.steps: expected zero or more, got {Steps}");
        if (BatchSize < 1) throw new ConfigException($"train.batch-size: expected a positive number, got {BatchSize}");
        if (!(Lr > 0)) throw new ConfigException($"train.lr: expected a positive number, got {Lr}");
        if (WeightDecay < 0) throw new ConfigException($"train.weight-decay: expected zero or more, got {WeightDecay}");
        if (WarmupSteps < 0) throw new ConfigException($"train.warmup-steps: expected zero or more, got {WarmupSteps}");
        if (LrSchedule != "constant" && LrSchedule != "cosine") throw new ConfigException($"train.lr-schedule: expected constant or cosine, got '{LrSchedule}'");
        if (GradClip < 0) throw new ConfigException($"train.grad-clip: expected zero (off) or a positive number, got {GradClip}");
        if (LogEvery < 1) throw new ConfigException($"train.log-every: expected a positive number, got {LogEvery}");
        if (SampleEvery < 0) throw new ConfigException($"train.sample-every: expected zero (off) or a positive number, got {SampleEvery}");
        if (CheckpointEvery < 1) throw new ConfigException($"train.checkpoint-every: expected a positive number, got {CheckpointEvery}");
        if (KeepCheckpoints < 0) throw new ConfigException($"train.keep-checkpoints: expected zero or more, got {KeepCheckpoints}");
        if (Threads < 0) throw new ConfigException($"train.threads: expected zero (default) or a positive number, got {Threads}");
        if (Precision != Models.Precisions.Auto && !Models.Precisions.Names.Contains(Precision))
            throw new ConfigException($"train.precision: expected auto, float32 or bf16-mixed, got '{Precision}'");
        if (InitWeights is not null && InitWeights.Trim().Length == 0) throw new ConfigException("train.init-weights: expected a safetensors file, got an empty path");
        if (LabelDropout is double p && !(p >= 0 && p <= 1)) throw new ConfigException($"train.label-dropout: expected a probability in [0, 1], got {p}");
    }
}

public sealed class EmaConfig
{
    /// <summary>Target decay of the exponential moving average of the weights.</summary>
    public double Decay { get; set; } = 0.9999;
    /// <summary>Warm-up: the decay at update n is min(decay, (1 + n)/(10 + n)), so short runs still get a useful average.</summary>
    public bool Warmup { get; set; } = true;

    public void Validate()
    {
        if (Decay < 0 || Decay >= 1) throw new ConfigException($"ema.decay: expected a value in [0, 1), got {Decay}");
    }
}

public sealed class SampleConfig
{
    /// <summary>A sampler of the registry (<see cref="Sampling.Samplers"/>): ddpm, ddim, dpm-solver, euler or heun.</summary>
    public string Sampler { get; set; } = "ddim";
    /// <summary>Backward steps (respaced when fewer than T); for dpm-solver, network evaluations.</summary>
    public int Steps { get; set; } = 100;
    /// <summary>ddim-stride, uniform or quadratic (ddpm and ddim).</summary>
    public string Spacing { get; set; } = "uniform";
    /// <summary>dpm-solver: dpmsolver (noise prediction) or dpmsolver++ (data prediction).</summary>
    public string Algorithm { get; set; } = "dpmsolver++";
    /// <summary>dpm-solver: singlestep or multistep.</summary>
    public string Method { get; set; } = "multistep";
    /// <summary>dpm-solver: the solver's order, 1, 2 or 3.</summary>
    public int Order { get; set; } = 2;
    /// <summary>dpm-solver: time-uniform, logSNR or time-quadratic.</summary>
    public string Skip { get; set; } = "time-uniform";
    /// <summary>dpm-solver multistep: lower the order of the last steps when there are few steps.</summary>
    public bool LowerOrderFinal { get; set; } = true;
    /// <summary>dpm-solver: one more evaluation at the end that returns x̂0 at t = 1/N.</summary>
    public bool DenoiseToZero { get; set; }
    /// <summary>Epsilon scaling λ_t = k·t + b for every sampler: b (1 with k = 0 is off).</summary>
    public double EpsScaleB { get; set; } = 1.0;
    /// <summary>Epsilon scaling: k, per unit of the network's time t (0 … T−1).</summary>
    public double EpsScaleK { get; set; }
    /// <summary>DDIM's η (0 = deterministic).</summary>
    public double Eta { get; set; } = 0.0;
    /// <summary>
    /// Classifier-free guidance weight w ≥ 0 of a class-conditional model (Ho &amp; Salimans: ε̂ = (1 + w)·ε̂(x, c) − w·ε̂(x, ∅)):
    /// used by the samples written during and after training and by <c>sample</c> when <c>--guidance</c> is not given.
    /// </summary>
    public double Guidance { get; set; }
    /// <summary>DDPM variance: fixed-small (β̃) or fixed-large (β).</summary>
    public string Variance { get; set; } = "fixed-small";
    /// <summary>Clip the x0 estimate to [−1, 1] at every step; unset = on for images, off for vectors.</summary>
    public bool? ClipDenoised { get; set; }
    /// <summary>Number of samples in the grids written during and after training.</summary>
    public int N { get; set; } = 64;

    /// <summary>
    /// Options a sampler declares in its registry entry beyond the properties above (e.g. <c>sigmas</c> and <c>rho</c> of
    /// euler and heun), as written in the config: <c>sample.KEY = value</c>. Checked by <see cref="Sampling.Samplers.ValidateOptions"/>.
    /// </summary>
    [System.Text.Json.Serialization.JsonExtensionData]
    public Dictionary<string, System.Text.Json.JsonElement>? Options { get; set; }

    /// <summary>The value of a sampler option kept in <see cref="Options"/>, or <paramref name="fallback"/>.</summary>
    public string Option(string key, string fallback) =>
        Options is not null && Options.TryGetValue(key, out var v) ? (v.ValueKind == System.Text.Json.JsonValueKind.String ? v.GetString()! : v.GetRawText()) : fallback;

    public void Validate()
    {
        if (Steps < 1) throw new ConfigException($"sample.steps: expected a positive number, got {Steps}");
        if (!Respacing.Names.Contains(Spacing)) throw new ConfigException($"sample.spacing: expected one of {string.Join(", ", Respacing.Names)}, got '{Spacing}'");
        if (Eta < 0) throw new ConfigException($"sample.eta: expected zero or more, got {Eta}");
        if (Variance != "fixed-small" && Variance != "fixed-large") throw new ConfigException($"sample.variance: expected fixed-small or fixed-large, got '{Variance}'");
        if (N < 1) throw new ConfigException($"sample.n: expected a positive number, got {N}");
        if (!Sampling.DpmSolver.Algorithms.Contains(Algorithm)) throw new ConfigException($"sample.algorithm: expected dpmsolver or dpmsolver++, got '{Algorithm}'");
        if (!Sampling.DpmSolver.Methods.Contains(Method)) throw new ConfigException($"sample.method: expected singlestep or multistep, got '{Method}'");
        if (Order < 1 || Order > 3) throw new ConfigException($"sample.order: expected 1, 2 or 3, got {Order}");
        if (!ContinuousSpacing.Names.Contains(Skip)) throw new ConfigException($"sample.skip: expected one of {string.Join(", ", ContinuousSpacing.Names)}, got '{Skip}'");
        if (!(EpsScaleB > 0)) throw new ConfigException($"sample.eps-scale-b: expected a positive number, got {EpsScaleB}");
        if (!(Guidance >= 0) || double.IsInfinity(Guidance)) throw new ConfigException($"sample.guidance: expected a weight w ≥ 0, got {Guidance}");
        if (Sampler == "dpm-solver" && Algorithm == "dpmsolver" && ClipDenoised == true)
            throw new ConfigException("sample.clip-denoised: applies to dpm-solver with sample.algorithm dpmsolver++ only (the noise form has no x̂0 to clip)");
        if (Sampler is "euler" or "heun" && ClipDenoised == true)
            throw new ConfigException($"sample.clip-denoised: {Sampler} never clips x̂0 (it integrates the ODE in σ, as k-diffusion does); turn clipping off");
        Sampling.Samplers.ValidateOptions(this);
    }

    /// <summary>Whether epsilon scaling changes anything (b ≠ 1 or k ≠ 0).</summary>
    public bool UsesEpsScaling() => EpsScaleB != 1.0 || EpsScaleK != 0.0;
}

/// <summary>An error in a configuration value or file, reported to the user as one line.</summary>
public sealed class ConfigException(string message) : UserError(message);
