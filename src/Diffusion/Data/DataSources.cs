using Diffusion.Config;

namespace Diffusion.Data;

/// <summary>
/// Turns a data spec (<c>kind</c> or <c>kind:arg</c>, e.g. <c>toy:moons?n=2000</c>, <c>fashion-mnist:test</c>,
/// <c>npy:FILE</c>) into a <see cref="Dataset"/> with the loader its kind declares in <see cref="DataKinds"/>,
/// and parses the parts of specs.
/// </summary>
public static class DataSources
{
    /// <summary>Every spec form: "toy:gmm-grid, toy:moons, …, npy:FILE".</summary>
    public static string Help => DataKinds.Help;

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
        var k = DataKinds.Find(kind) ?? throw new UserError($"data '{spec}': unknown kind; expected one of {Help}");
        return k.Load(new DataRequest(spec, arg, cfg));
    }

    /// <summary>"kind:rest" → (kind, rest); a bare name → (name, "").</summary>
    public static (string Kind, string Arg) Split(string spec)
    {
        int c = spec.IndexOf(':');
        return c < 0 ? (spec, "") : (spec[..c], spec[(c + 1)..]);
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
}
