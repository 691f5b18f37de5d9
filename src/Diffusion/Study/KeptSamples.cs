using System.Text.Json.Nodes;
using Diffusion.Util;
using static TorchSharp.torch;

namespace Diffusion.Study;

/// <summary>
/// The first samples of an evaluation, kept in a study's result file so that its report can draw them after the
/// checkpoints are gone (<c>[report] samples</c>). Images in [−1, 1] are stored as the bytes a PNG grid shows
/// (<see cref="IO.ImageGrid"/>'s mapping, so the picture redrawn from them is the same picture); any other samples as
/// float32. Both little-endian, base64.
/// </summary>
public static class KeptSamples
{
    /// <summary>The first <paramref name="n"/> rows of <paramref name="samples"/> as JSON: n, shape of one sample, dtype, data.</summary>
    public static JsonObject Encode(Tensor samples, int n)
    {
        using var scope = NewDisposeScope();
        var first = samples.narrow(0, 0, Math.Min(n, samples.shape[0])).detach().cpu().to_type(ScalarType.Float32);
        bool image = first.dim() == 4;
        byte[] bytes;
        if (image)
            bytes = first.Clamp(-1, 1).Add(1L).Mul(127.5).round().to_type(ScalarType.Byte).contiguous().data<byte>().ToArray();
        else
        {
            var f = first.contiguous().data<float>().ToArray();
            bytes = new byte[f.Length * 4];
            Buffer.BlockCopy(f, 0, bytes, 0, bytes.Length);
        }
        return new JsonObject
        {
            ["n"] = first.shape[0],
            ["shape"] = new JsonArray(first.shape.Skip(1).Select(d => (JsonNode)d).ToArray()),
            ["dtype"] = image ? "uint8" : "float32",
            ["data"] = Convert.ToBase64String(bytes),
        };
    }

    /// <summary>The samples of <see cref="Encode"/> back as a float32 tensor (images in [−1, 1]).</summary>
    public static Tensor Decode(JsonObject kept)
    {
        long n = kept["n"]!.GetValue<long>();
        long[] shape = [n, .. kept["shape"]!.AsArray().Select(d => d!.GetValue<long>())];
        byte[] bytes = Convert.FromBase64String(kept["data"]!.GetValue<string>());
        string dtype = kept["dtype"]!.GetValue<string>();
        long count = shape.Aggregate(1L, (a, b) => a * b);
        if (dtype == "uint8")
        {
            if (bytes.Length != count) throw new UserError($"kept samples: {bytes.Length} bytes for shape [{string.Join(", ", shape)}] of uint8");
            using var u = tensor(bytes, shape, ScalarType.Byte);
            return u.to_type(ScalarType.Float32).DivInPlace(127.5).AddInPlace(-1.0);
        }
        if (dtype != "float32") throw new UserError($"kept samples: dtype '{dtype}'; expected uint8 or float32");
        if (bytes.Length != count * 4) throw new UserError($"kept samples: {bytes.Length} bytes for shape [{string.Join(", ", shape)}] of float32");
        var f = new float[count];
        Buffer.BlockCopy(bytes, 0, f, 0, bytes.Length);
        return tensor(f, shape);
    }
}
