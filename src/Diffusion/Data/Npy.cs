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

    /// <summary>
    /// <c>npy:FILE</c>: an N×D or N×C×H×W array, used as it is (as float32); <c>npy:FILE?labels=LABELS.npy</c> adds
    /// the class of each row from a 1-D integer array of N labels 0 … K−1 (as <c>diffusion sample</c> writes beside
    /// its samples).
    /// </summary>
    public static Dataset FromSpec(DataRequest request)
    {
        var (file, opts) = DataSources.Options(request.Arg);
        if (file == "") throw new UserError($"{request.Spec}: expected npy:FILE or npy:FILE?labels=LABELS.npy");
        var o = new SpecOptions(request.Spec, opts);
        string? labelsPath = o.String("labels");
        o.Done();
        using var t = Read(file);
        if (t.dim() != 2 && t.dim() != 4)
            throw new UserError($"{request.Spec}: expected an N×D or N×C×H×W array, got shape ({string.Join(", ", t.shape)})");
        using var labels = labelsPath is null ? null : ReadLabels(labelsPath, t.shape[0]);
        return new Dataset(request.Spec, t.to_type(ScalarType.Float32), labels?.clone());
    }

    /// <summary>A labels file: a 1-D integer array of <paramref name="n"/> values ≥ 0 (int64); anything else is one clear error.</summary>
    public static Tensor ReadLabels(string path, long n)
    {
        var t = Read(path);
        try
        {
            if (t.dtype is not (ScalarType.Int64 or ScalarType.Int32 or ScalarType.Byte))
                throw new UserError($"{path}: labels of dtype {t.dtype}; expected integers (int64, int32 or uint8)");
            if (t.dim() != 1) throw new UserError($"{path}: labels of shape ({string.Join(", ", t.shape)}); expected one dimension of {n} labels");
            if (t.shape[0] != n) throw new UserError($"{path}: {t.shape[0]} labels; expected {n}, one per example");
            var l = t.to_type(ScalarType.Int64);
            if (n > 0 && l.min().item<long>() < 0)
            {
                l.Dispose();
                throw new UserError($"{path}: holds a negative label; expected classes 0 … K−1");
            }
            return l;
        }
        finally { t.Dispose(); }
    }

    /// <summary>Writes class labels as a 1-D int64 array atomically.</summary>
    public static void WriteLabels(string path, long[] labels)
    {
        string header = $"{{'descr': '<i8', 'fortran_order': False, 'shape': ({labels.Length},), }}";
        int total = 10 + header.Length + 1;
        header = header + new string(' ', (64 - total % 64) % 64) + "\n";
        using var s = new MemoryStream();
        s.Write(Magic);
        s.WriteByte(1); s.WriteByte(0);
        s.Write(BitConverter.GetBytes((ushort)header.Length));
        s.Write(Encoding.Latin1.GetBytes(header));
        s.Write(MemoryMarshal.AsBytes(labels.AsSpan()));
        var bytes = s.ToArray();
        Util.AtomicFile.Write(path, st => st.Write(bytes));
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

    /// <summary>Writes a float32, float64 or int64 tensor (others are written as float32) atomically.</summary>
    public static void Write(string path, Tensor t)
    {
        var bytes = ToBytes(t);
        Util.AtomicFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>The bytes of a .npy file holding a float32, float64 or int64 tensor (others become float32).</summary>
    public static byte[] ToBytes(Tensor t)
    {
        using var c = t.detach().cpu().contiguous();
        bool f64 = c.dtype == ScalarType.Float64, i64 = c.dtype == ScalarType.Int64;
        using var data = f64 || i64 ? c.alias() : c.to_type(ScalarType.Float32);
        string shape = c.shape.Length == 1 ? $"({c.shape[0]},)" : $"({string.Join(", ", c.shape)})";
        string header = $"{{'descr': '{(f64 ? "<f8" : i64 ? "<i8" : "<f4")}', 'fortran_order': False, 'shape': {shape}, }}";
        int total = 10 + header.Length + 1;
        int pad = (64 - total % 64) % 64;
        header = header + new string(' ', pad) + "\n";
        using var s = new MemoryStream();
        s.Write(Magic);
        s.WriteByte(1); s.WriteByte(0);
        s.Write(BitConverter.GetBytes((ushort)header.Length));
        s.Write(Encoding.Latin1.GetBytes(header));
        if (f64) s.Write(MemoryMarshal.AsBytes(data.data<double>().ToArray().AsSpan()));
        else if (i64) s.Write(MemoryMarshal.AsBytes(data.data<long>().ToArray().AsSpan()));
        else s.Write(MemoryMarshal.AsBytes(data.data<float>().ToArray().AsSpan()));
        return s.ToArray();
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']*)'")] private static partial Regex DescrRegex();
    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")] private static partial Regex FortranRegex();
    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")] private static partial Regex ShapeRegex();
}
