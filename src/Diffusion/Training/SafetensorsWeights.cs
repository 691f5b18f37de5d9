using Diffusion.Config;
using Diffusion.IO;
using Diffusion.Models;
using static TorchSharp.torch;

namespace Diffusion.Training;

/// <summary>
/// A trained network's weights as PyTorch tools read them: <c>diffusion export</c> writes a run's EMA weights as
/// <c>model.safetensors</c> (state-dict names, float32) with the run's <c>config.json</c> beside it, and
/// <c>diffusion train --init-weights</c> starts a new run from such a file (<see cref="LoadInto"/>).
/// </summary>
public static class SafetensorsWeights
{
    public const string ModelFile = "model.safetensors";
    public const string ConfigFile = "config.json";

    /// <summary>What <see cref="Export"/> wrote.</summary>
    public sealed record ExportResult(string ModelPath, string ConfigPath, long Step, IReadOnlyList<(string Name, long[] Shape)> Tensors);

    /// <summary>
    /// Writes the EMA weights of the run folder or checkpoint <paramref name="checkpoint"/> to
    /// <paramref name="outDir"/>/<see cref="ModelFile"/> and its config to <paramref name="outDir"/>/<see cref="ConfigFile"/>.
    /// </summary>
    public static ExportResult Export(string checkpoint, string outDir)
    {
        using var trained = TrainedModel.Load(checkpoint, "ema");
        Directory.CreateDirectory(outDir);
        string modelPath = Path.Combine(outDir, ModelFile), configPath = Path.Combine(outDir, ConfigFile);
        using var scope = NewDisposeScope();
        var tensors = Float32StateDict(trained.Network);
        StateDictFiles.WriteSafetensors(modelPath, tensors);
        Util.AtomicFile.WriteAllText(configPath, ConfigLoader.ToJson(trained.Config));
        return new ExportResult(modelPath, configPath, trained.Step, tensors.Select(t => (t.Name, t.Value.shape)).ToList());
    }

    /// <summary>The module's state dict in its order, floating-point tensors as float32 (others as they are), detached copies.</summary>
    public static List<(string Name, Tensor Value)> Float32StateDict(nn.Module module)
    {
        using var _ = no_grad();
        return module.state_dict()
            .Select(kv => (kv.Key, kv.Value.is_floating_point() ? kv.Value.detach().to_type(ScalarType.Float32).contiguous() : kv.Value.detach().contiguous()))
            .ToList();
    }

    /// <summary>
    /// Copies the tensors of the safetensors file <paramref name="path"/> into <paramref name="network"/> by state-dict
    /// name. A missing, unexpected or differently shaped tensor is a one-line error naming the file and the tensor.
    /// </summary>
    public static void LoadInto(string path, DenoiserNetwork network)
    {
        const string Hint = "export the weights of a run with the same model config (diffusion export)";
        var state = StateDictFiles.ReadSafetensors(path);
        try
        {
            var own = network.state_dict();
            foreach (var name in state.Keys)
                if (!own.ContainsKey(name)) throw new UserError($"--init-weights {path}: unexpected tensor '{name}' (this run's network has no such tensor); {Hint}");
            StateDictFiles.CopyInto(state, own, $"--init-weights {path}", "this run's network", Hint);
        }
        finally { foreach (var t in state.Values) t.Dispose(); }
    }
}
