using Diffusion.Training;

namespace Diffusion.Cli;

/// <summary><c>diffusion export</c>: a run's EMA weights as safetensors with its config beside them, for PyTorch tools.</summary>
public static class ExportCommand
{
    /// <summary>The options, in the order the help lists them.</summary>
    internal static readonly IReadOnlyList<OptionSpec> Options =
    [
        OptionSpec.Value("checkpoint", "RUN", "run folder or checkpoint file"),
        OptionSpec.Value("out", "DIR", "output folder (created; model.safetensors and config.json are replaced)"),
        OptionSpec.Value("format", "F", "safetensors (the only format)", ["safetensors"]),
    ];

    public static HelpPage Help => new("""
        diffusion export --checkpoint RUN --out DIR [--format safetensors]
        """, """
        Writes the EMA weights of a run as DIR/model.safetensors (state-dict names, float32, readable by
        PyTorch's safetensors or any reader of the format) and the run's config as DIR/config.json.
        A new run starts from such weights with diffusion train --init-weights DIR/model.safetensors.
        """, Options);

    public static int Run(string[] argv)
    {
        var a = new Args("export", argv, Options);
        a.NoPositionals();
        string checkpoint = a.Require("checkpoint", "RUN");
        string outDir = a.Require("out", "DIR");
        string format = a.Get("format") ?? "safetensors";
        if (format != "safetensors") throw new UsageError($"diffusion export: --format {format}: expected safetensors");
        var r = SafetensorsWeights.Export(checkpoint, outDir);
        Console.Error.WriteLine($"export: EMA weights of step {r.Step}, {r.Tensors.Count} tensors, {r.Tensors.Sum(t => t.Shape.Aggregate(1L, (x, y) => x * y)):N0} values → {r.ModelPath}; config → {r.ConfigPath}");
        return 0;
    }
}
