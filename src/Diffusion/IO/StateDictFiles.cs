using System.Collections;
using System.IO.Compression;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Diffusion.IO;

/// <summary>
/// State dicts in PyTorch's own files, read and written through TorchSharp.PyBridge (no Python at run time):
/// safetensors (read and write) and <c>torch.save</c> pickles (<c>.pth</c>/<c>.pt</c>/<c>.bin</c>, read only).
/// Every problem with a file is a one-line <see cref="UserError"/> naming it.
/// <para>PyBridge reads the zip container <c>torch.save</c> has written since PyTorch 1.6; a file in the older
/// container (it starts with a pickle, not "PK"), such as pytorch-fid's Inception weights, is read by
/// <see cref="LegacyTorchFile"/>.</para>
/// </summary>
public static class StateDictFiles
{
    /// <summary>Whether <paramref name="path"/> looks like a <c>torch.save</c> file: a zip with a <c>data.pkl</c>, or the legacy pickle container.</summary>
    public static bool IsPyTorchFile(string path)
    {
        if (!File.Exists(path)) return false;
        using var fs = File.OpenRead(path);
        Span<byte> head = stackalloc byte[2];
        if (fs.Read(head) < 2) return false;
        if (head[0] == 0x80 && head[1] <= 5) return true; // pickle protocol opcode: the legacy container
        if (head[0] != (byte)'P' || head[1] != (byte)'K') return false;
        fs.Position = 0;
        try
        {
            using var zip = new ZipArchive(fs, ZipArchiveMode.Read);
            return zip.Entries.Any(e => e.FullName == "data.pkl" || e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal));
        }
        catch (InvalidDataException) { return false; }
    }

    /// <summary>The tensors of a state dict saved with <c>torch.save(model.state_dict(), path)</c> (zip or legacy container), by name (the caller disposes them).</summary>
    public static Dictionary<string, Tensor> ReadPyTorch(string path)
    {
        if (!File.Exists(path)) throw new UserError($"{path}: file not found");
        bool legacy = false;
        using (var fs = File.OpenRead(path))
        {
            int b0 = fs.ReadByte(), b1 = fs.ReadByte();
            if (b0 == 0x80 && b1 is >= 0 and <= 5) legacy = true;
        }
        if (legacy) return LegacyTorchFile.Read(path);
        Hashtable table;
        try { table = PyTorchUnpickler.UnpickleStateDict(path); }
        catch (Exception e) when (e is not UserError)
        {
            throw new UserError($"{path}: not a readable PyTorch state dict ({e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")})");
        }
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in table)
        {
            if (entry.Key is string name && entry.Value is Tensor t) result[name] = t;
        }
        return result;
    }

    /// <summary>The tensors of a safetensors file by name, in the file's dtypes (the caller disposes them).</summary>
    public static Dictionary<string, Tensor> ReadSafetensors(string path)
    {
        if (!File.Exists(path)) throw new UserError($"{path}: file not found");
        try { return new Dictionary<string, Tensor>(Safetensors.LoadStateDict(path), StringComparer.Ordinal); }
        catch (Exception e) when (e is not UserError)
        {
            throw new UserError($"{path}: not a readable safetensors file ({e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")})");
        }
    }

    /// <summary>
    /// Copies <paramref name="state"/> into <paramref name="own"/> by name: every tensor of <paramref name="own"/> must be
    /// there with the same shape (converted to its dtype); a missing or misshapen tensor is a one-line error starting with
    /// <paramref name="origin"/>, naming the tensor, and ending with <paramref name="hint"/>. Extra tensors in the file are
    /// the caller's to check.
    /// </summary>
    public static void CopyInto(IReadOnlyDictionary<string, Tensor> state, IEnumerable<KeyValuePair<string, Tensor>> own, string origin, string what, string hint)
    {
        using var _ = no_grad();
        foreach (var (name, target) in own)
        {
            if (!state.TryGetValue(name, out var src)) throw new UserError($"{origin}: missing tensor '{name}'; {hint}");
            if (!src.shape.SequenceEqual(target.shape))
                throw new UserError($"{origin}: tensor '{name}' has shape [{string.Join(", ", src.shape)}], {what} expects [{string.Join(", ", target.shape)}]; {hint}");
            using var converted = src.to_type(target.dtype);
            target.copy_(converted);
        }
    }

    /// <summary>
    /// Writes <paramref name="tensors"/> as a safetensors file, in the given order, atomically. Names must be ASCII
    /// (PyBridge writes the header's length in characters).
    /// </summary>
    public static void WriteSafetensors(string path, IEnumerable<(string Name, Tensor Value)> tensors)
    {
        var dict = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, value) in tensors)
        {
            if (name.Any(c => c > 127)) throw new UserError($"{path}: tensor name '{name}' is not ASCII");
            dict.Add(name, value.cpu().contiguous());
        }
        Util.AtomicFile.Write(path, s => Safetensors.SaveStateDict(s, dict, leaveOpen: true));
    }
}
