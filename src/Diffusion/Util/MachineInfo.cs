using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Diffusion.Models;

namespace Diffusion.Util;

/// <summary>
/// What the machine says it is (from /proc/cpuinfo where there is one): enough to tell, when two runs of the same job
/// differ, whether they ran on the same kind of CPU — oneDNN and MKL pick their kernels by it, and bfloat16 results
/// follow the kernels.
/// </summary>
public static class MachineInfo
{
    /// <summary>A field of the first processor in /proc/cpuinfo ("model name", "cpu family", …), or null.</summary>
    public static string? CpuField(string name)
    {
        try
        {
            if (!File.Exists("/proc/cpuinfo")) return null;
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith(name, StringComparison.Ordinal) && l.IndexOf(':') is int c && c > 0 && l[..c].Trim() == name);
            return line is null ? null : line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>The CPU's model name, or "unknown CPU".</summary>
    public static string CpuModel => CpuField("model name") ?? "unknown CPU";

    /// <summary>The CPU (name, family, model, stepping), logical CPUs, native bfloat16, OS and libtorch version.</summary>
    public static JsonObject Describe() => new()
    {
        ["cpu"] = CpuModel,
        ["cpu_family"] = CpuField("cpu family"),
        ["cpu_model"] = CpuField("model"),
        ["cpu_stepping"] = CpuField("stepping"),
        ["logical_cpus"] = Environment.ProcessorCount,
        ["cpu_bf16"] = Precisions.CpuBf16,
        ["os"] = RuntimeInformation.OSDescription,
        ["libtorch"] = TorchSharp.torch.__version__,
    };

    /// <summary>One line: "AMD EPYC (family 26, model 2)".</summary>
    public static string Short(JsonObject? m) => m is null ? "not recorded"
        : $"{m["cpu"]?.GetValue<string>() ?? "unknown CPU"} (family {m["cpu_family"]?.GetValue<string>() ?? "?"}, model {m["cpu_model"]?.GetValue<string>() ?? "?"})";
}
