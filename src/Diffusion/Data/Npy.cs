using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace Diffusion.Data;

/// <summary>
/// Reads and writes NumPy's .npy format (versions 1–3, C order, little-endian): float32, float64,
/// uint8, int32 and int64 arrays.
/// </summary>
public static partial class Npy
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary><c>npy:FILE</c>: an N×D or N×C×H×W array, used as it is (as float32).</summary>
    public static Dataset FromSpec(DataRequest request)
    {
        if (request.Arg == "") throw new UserError($"{request.Spec}: expected npy:FILE");
        using var t = Read(request.Arg);
        if (t.dim() != 2 && t.dim() != 4)
            throw new UserError($"{request.Spec}: expected an N×D or N×C×H×W array, got shape ({string.Join(", ", t.shape)})");
        return new Dataset(request.Spec, t.to_type(ScalarType.Float32));
    }

    /// <summary>Reads FILE into a tensor of its own dtype and shape; a malformed file is one clear error.</summary>
    public static Tensor Read(string path)
    {
        if (!File.Exists(path)) throw new UserError($"{path}: file not found");
        return FromBytes(path, File.ReadAllBytes(path));
    }

    /// <summary>Parses the bytes of a .npy file (<paramref name="name"/> names it in errors), e.g. one member of an .npz archive.</summary>
    public static Tensor FromBytes(string name, byte[] bytes)
    {
        var (shape, type, size, dataStart) = ParseHeader(name, bytes);
        long count = 1;
        try { foreach (var s in shape) count = checked(count * s); _ = checked(count * size); }
        catch (OverflowException) { throw new UserError($"{name}: truncated: shape ({string.Join(", ", shape)}) needs more bytes of data than any file holds"); }
        if (bytes.LongLength - dataStart < count * size)
            throw new UserError($"{name}: truncated: shape ({string.Join(", ", shape)}) needs {count * size} bytes of data, the file has {bytes.LongLength - dataStart}");
        var span = bytes.AsSpan(dataStart, (int)(count * size));
        return type switch
        {
            ScalarType.Float32 => tensor(MemoryMarshal.Cast<byte, float>(span).ToArray(), shape),
            ScalarType.Float64 => tensor(MemoryMarshal.Cast<byte, double>(span).ToArray(), shape),
            ScalarType.Int32 => tensor(MemoryMarshal.Cast<byte, int>(span).ToArray(), shape),
            ScalarType.Int64 => tensor(MemoryMarshal.Cast<byte, long>(span).ToArray(), shape),
            _ => tensor(span.ToArray(), shape),
        };
    }

    /// <summary>The shape stored in FILE's header.</summary>
    public static long[] ReadShape(string path)
    {
        if (!File.Exists(path)) throw new UserError($"{path}: file not found");
        using var fs = File.OpenRead(path);
        var head = new byte[Math.Min(fs.Length, 1 << 16)];
        fs.ReadExactly(head);
        return ParseHeader(path, head).Shape;
    }

    private static (long[] Shape, ScalarType Type, int Size, int DataStart) ParseHeader(string path, byte[] bytes)
    {
        if (bytes.Length < 10 || !bytes.AsSpan(0, 6).SequenceEqual(Magic))
            throw new UserError($"{path}: not a .npy file (missing the \\x93NUMPY magic)");
        int major = bytes[6];
        int headerLen, offset;
        if (major == 1) { headerLen = BitConverter.ToUInt16(bytes, 8); offset = 10; }
        else if (major is 2 or 3)
        {
            if (bytes.Length < 12) throw new UserError($"{path}: truncated .npy header");
            headerLen = (int)BitConverter.ToUInt32(bytes, 8); offset = 12;
        }
        else throw new UserError($"{path}: unsupported .npy version {major}");
        if (headerLen < 0 || offset + headerLen > bytes.Length) throw new UserError($"{path}: truncated .npy header");
        string header = Encoding.Latin1.GetString(bytes, offset, headerLen);
        var descr = DescrRegex().Match(header);
        var fortran = FortranRegex().Match(header);
        var shapeM = ShapeRegex().Match(header);
        if (!descr.Success || !shapeM.Success) throw new UserError($"{path}: unreadable .npy header '{header.Trim()}'");
        if (fortran.Success && fortran.Groups[1].Value == "True") throw new UserError($"{path}: Fortran-ordered arrays are not supported; save with C order");
        long[] shape;
        try { shape = shapeM.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(long.Parse).ToArray(); }
        catch (Exception e) when (e is FormatException or OverflowException) { throw new UserError($"{path}: unreadable shape in .npy header '{header.Trim()}'"); }
        if (shape.Any(s => s < 0)) throw new UserError($"{path}: negative size in the .npy shape ({string.Join(", ", shape)})");
        string d = descr.Groups[1].Value;
        (ScalarType type, int size) = d switch
        {
            "<f4" => (ScalarType.Float32, 4),
            "<f8" => (ScalarType.Float64, 8),
            "|u1" or "<u1" => (ScalarType.Byte, 1),
            "<i4" => (ScalarType.Int32, 4),
            "<i8" => (ScalarType.Int64, 8),
            _ => throw new UserError($"{path}: unsupported dtype '{d}'; expected float32, float64, uint8, int32 or int64 (little-endian)"),
        };
        return (shape, type, size, offset + headerLen);
    }

    /// <summary>Writes a float32 or float64 tensor (others are written as float32) atomically.</summary>
    public static void Write(string path, Tensor t)
    {
        var bytes = ToBytes(t);
        Util.AtomicFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>The bytes of a .npy file holding a float32 or float64 tensor (others become float32).</summary>
    public static byte[] ToBytes(Tensor t)
    {
        using var c = t.detach().cpu().contiguous();
        bool f64 = c.dtype == ScalarType.Float64;
        using var data = f64 ? c.alias() : c.to_type(ScalarType.Float32);
        string shape = c.shape.Length == 1 ? $"({c.shape[0]},)" : $"({string.Join(", ", c.shape)})";
        string header = $"{{'descr': '{(f64 ? "<f8" : "<f4")}', 'fortran_order': False, 'shape': {shape}, }}";
        int total = 10 + header.Length + 1;
        int pad = (64 - total % 64) % 64;
        header = header + new string(' ', pad) + "\n";
        using var s = new MemoryStream();
        s.Write(Magic);
        s.WriteByte(1); s.WriteByte(0);
        s.Write(BitConverter.GetBytes((ushort)header.Length));
        s.Write(Encoding.Latin1.GetBytes(header));
        if (f64) s.Write(MemoryMarshal.AsBytes(data.data<double>().ToArray().AsSpan()));
        else s.Write(MemoryMarshal.AsBytes(data.data<float>().ToArray().AsSpan()));
        return s.ToArray();
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")] private static partial Regex DescrRegex();
    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")] private static partial Regex FortranRegex();
    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")] private static partial Regex ShapeRegex();
}
