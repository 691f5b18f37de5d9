using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;
using static TorchSharp.torch;

namespace Diffusion.IO;

/// <summary>
/// Reads state dicts from PyTorch's legacy <c>torch.save</c> container (before PyTorch 1.6, and later with
/// <c>_use_new_zipfile_serialization=False</c>), as pytorch-fid's <c>pt_inception-2015-12-05-6726825d.pth</c> is written.
/// <para>The container is a sequence of pickles and raw bytes: the magic number, the protocol version (1001), a dict of
/// system information (byte order), the object itself (whose storages are persistent ids
/// <c>('storage', storage type, key, location, numel[, view])</c> and whose tensors are
/// <c>torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)</c>), the list of storage keys,
/// then each storage in that order: its element count as an 8-byte little-endian integer and its elements.</para>
/// <para>The pickles are interpreted by a small pickle machine of our own that knows only the opcodes and the few
/// globals a state dict needs (dicts, <c>collections.OrderedDict</c>, tensors, storages); anything else in the object
/// becomes an opaque placeholder, and is only an error if a tensor is built from it. Nothing is ever executed.</para>
/// <para>Storages: float64/32/16, bfloat16, int64/32/16/8, uint8 and bool. Views: any size, stride and offset into a
/// storage (a non-contiguous tensor is saved as such); storages shared between tensors; the old storage views
/// (a slice of a root storage) too. The result is a contiguous copy of every tensor.</para>
/// </summary>
public static class LegacyTorchFile
{
    /// <summary>The magic number that opens the container (pickled as a Python int).</summary>
    private static readonly BigInteger Magic = BigInteger.Parse("119547037146038801333356");

    private sealed record Global(string Module, string Name)
    {
        public override string ToString() => $"{Module}.{Name}";
    }

    /// <summary>Something the machine does not model: the callable and its arguments, kept only for messages.</summary>
    private sealed record Opaque(Global Type);

    private sealed record StorageRef(string Key, ScalarType Dtype, int ElementSize, long Numel, long ViewOffset);

    private sealed record TensorRef(StorageRef Storage, long Offset, long[] Size, long[] Stride);

    private static readonly Dictionary<string, (ScalarType Dtype, int Size)> StorageTypes = new(StringComparer.Ordinal)
    {
        ["DoubleStorage"] = (ScalarType.Float64, 8),
        ["FloatStorage"] = (ScalarType.Float32, 4),
        ["HalfStorage"] = (ScalarType.Float16, 2),
        ["BFloat16Storage"] = (ScalarType.BFloat16, 2),
        ["LongStorage"] = (ScalarType.Int64, 8),
        ["IntStorage"] = (ScalarType.Int32, 4),
        ["ShortStorage"] = (ScalarType.Int16, 2),
        ["CharStorage"] = (ScalarType.Int8, 1),
        ["ByteStorage"] = (ScalarType.Byte, 1),
        ["BoolStorage"] = (ScalarType.Bool, 1),
    };

    /// <summary>
    /// The tensors of the state dict in <paramref name="path"/> by name (the caller disposes them): the top-level dict,
    /// or the dict under its <c>"state_dict"</c> key when there is one. Entries that are not tensors are skipped.
    /// Every problem is a one-line <see cref="UserError"/> naming the file.
    /// </summary>
    public static Dictionary<string, Tensor> Read(string path)
    {
        try
        {
            using var fs = File.OpenRead(path);
            using var reader = new BinaryReader(new BufferedStream(fs, 1 << 16));
            var storages = new Dictionary<string, StorageRef>(StringComparer.Ordinal);

            if (new PickleMachine(reader, path, storages).Load() is not BigInteger magic || magic != Magic)
                throw new UserError($"{path}: starts with a pickle but not with torch.save's magic number; not a PyTorch file");
            if (new PickleMachine(reader, path, storages).Load() is not long version || version != 1001)
                throw new UserError($"{path}: unsupported legacy torch.save protocol version");
            if (new PickleMachine(reader, path, storages).Load() is Dictionary<object, object?> sysInfo
                && sysInfo.TryGetValue("little_endian", out var le) && le is false)
                throw new UserError($"{path}: saved on a big-endian machine, which is not supported");
            var root = new PickleMachine(reader, path, storages).Load();
            if (new PickleMachine(reader, path, storages).Load() is not List<object?> keys)
                throw new UserError($"{path}: the list of storage keys is missing; truncated or not a torch.save file");

            var data = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            foreach (var k in keys)
            {
                if (k is not string key) throw new UserError($"{path}: a storage key is not a string");
                long numel = reader.ReadInt64();
                if (!storages.TryGetValue(key, out var s))
                    throw new UserError($"{path}: storage '{key}' is not used by any tensor; not a state dict this reader understands");
                long bytes = numel * s.ElementSize;
                if (numel < 0 || bytes > int.MaxValue || bytes > reader.BaseStream.Length)
                    throw new UserError($"{path}: storage '{key}' claims {numel} elements; truncated or corrupt");
                var buf = reader.ReadBytes((int)bytes);
                if (buf.Length != bytes) throw new EndOfStreamException();
                data[key] = buf;
            }

            if (root is Dictionary<object, object?> top && top.TryGetValue("state_dict", out var inner) && inner is Dictionary<object, object?> nested)
                root = nested;
            if (root is not Dictionary<object, object?> dict)
                throw new UserError($"{path}: holds a {Describe(root)}, not a state dict (a dict of tensors)");

            var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            try
            {
                foreach (var (k, v) in dict)
                {
                    if (k is string name && v is TensorRef t) result[name] = Materialise(t, data, path, name);
                }
            }
            catch
            {
                foreach (var t in result.Values) t.Dispose();
                throw;
            }
            return result;
        }
        catch (EndOfStreamException)
        {
            throw new UserError($"{path}: ends early; a truncated legacy torch.save file");
        }
        catch (Exception e) when (e is not UserError)
        {
            throw new UserError($"{path}: not a readable legacy torch.save file ({e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")})");
        }
    }

    private static Tensor Materialise(TensorRef t, Dictionary<string, byte[]> data, string path, string name)
    {
        var s = t.Storage;
        if (!data.TryGetValue(s.Key, out var bytes))
            throw new UserError($"{path}: tensor '{name}' refers to storage '{s.Key}', which the file does not hold");
        long available = bytes.Length / s.ElementSize - s.ViewOffset;
        if (t.Size.Length != t.Stride.Length) throw new UserError($"{path}: tensor '{name}' has {t.Size.Length} sizes but {t.Stride.Length} strides");
        // The last element the view touches must lie inside the storage.
        long last = t.Offset;
        foreach (var (n, st) in t.Size.Zip(t.Stride))
        {
            if (n < 0 || st < 0) throw new UserError($"{path}: tensor '{name}' has a negative size or stride");
            if (n == 0) { last = -1; break; }
            last = checked(last + (n - 1) * st);
        }
        if (t.Offset < 0 || last >= available)
            throw new UserError($"{path}: tensor '{name}' reaches past the end of its storage ({available} elements)");
        // A state dict's tensor never has more elements than its storage (stride 0 or overlapping views would make a
        // crafted file allocate without bound).
        long numel = 1;
        foreach (var n in t.Size) numel = n == 0 || numel <= available / n ? numel * n : long.MaxValue;
        if (numel > Math.Max(available, 0))
            throw new UserError($"{path}: tensor '{name}' has {numel} elements but its storage holds {available}");
        using var flat = Elements(bytes, s.Dtype);
        using var view = flat.as_strided(t.Size, t.Stride, s.ViewOffset + t.Offset);
        using var dense = view.contiguous();
        return dense.clone(); // memory of its own, whatever the view shared
    }

    /// <summary>A storage's little-endian bytes as a 1-d tensor of its element type.</summary>
    private static Tensor Elements(byte[] b, ScalarType dtype)
    {
        switch (dtype)
        {
            case ScalarType.Float64: return tensor(MemoryMarshal.Cast<byte, double>(b).ToArray());
            case ScalarType.Float32: return tensor(MemoryMarshal.Cast<byte, float>(b).ToArray());
            case ScalarType.Int64: return tensor(MemoryMarshal.Cast<byte, long>(b).ToArray());
            case ScalarType.Int32: return tensor(MemoryMarshal.Cast<byte, int>(b).ToArray());
            case ScalarType.Int16: return tensor(MemoryMarshal.Cast<byte, short>(b).ToArray());
            case ScalarType.Int8: return tensor(MemoryMarshal.Cast<byte, sbyte>(b).ToArray());
            case ScalarType.Byte: return tensor((byte[])b.Clone());
            case ScalarType.Bool: return tensor(b.Select(x => x != 0).ToArray());
            case ScalarType.Float16:
            {
                // Every half is exactly a float, and converts back exactly.
                using var f = tensor(MemoryMarshal.Cast<byte, Half>(b).ToArray().Select(h => (float)h).ToArray());
                return f.to_type(ScalarType.Float16);
            }
            case ScalarType.BFloat16:
            {
                // A bfloat16 is the upper half of a float32's bits.
                using var f = tensor(MemoryMarshal.Cast<byte, ushort>(b).ToArray().Select(u => BitConverter.Int32BitsToSingle(u << 16)).ToArray());
                return f.to_type(ScalarType.BFloat16);
            }
            default: throw new InvalidOperationException($"no reader for {dtype}");
        }
    }

    private static string Describe(object? o) => o switch
    {
        null => "None",
        Opaque op => op.Type.ToString(),
        TensorRef => "single tensor",
        List<object?> => "list",
        object?[] => "tuple",
        _ => o.GetType().Name,
    };

    /// <summary>
    /// A pickle interpreter for one pickle of the container (protocols 0–5, the opcodes that plain data, dicts and
    /// reduce calls use). Globals are never resolved to code: only the few a state dict needs mean anything.
    /// </summary>
    private sealed class PickleMachine(BinaryReader r, string path, Dictionary<string, StorageRef> storages)
    {
        private static readonly object Mark = new();
        private readonly List<object?> stack = [];
        private readonly Dictionary<long, object?> memo = [];

        public object? Load()
        {
            while (true)
            {
                byte op = r.ReadByte();
                switch (op)
                {
                    case 0x80: r.ReadByte(); break;                                  // PROTO
                    case 0x95: r.ReadInt64(); break;                                 // FRAME
                    case (byte)'.': return Pop();                                    // STOP
                    case (byte)'(': stack.Add(Mark); break;                          // MARK
                    case (byte)'N': stack.Add(null); break;
                    case 0x88: stack.Add(true); break;
                    case 0x89: stack.Add(false); break;
                    case (byte)'J': stack.Add((long)r.ReadInt32()); break;           // BININT
                    case (byte)'K': stack.Add((long)r.ReadByte()); break;            // BININT1
                    case (byte)'M': stack.Add((long)r.ReadUInt16()); break;          // BININT2
                    case 0x8a: stack.Add(Long(r.ReadByte())); break;                 // LONG1
                    case 0x8b: stack.Add(Long(Length(r.ReadInt32()))); break;        // LONG4
                    case (byte)'I': stack.Add(TextInt(Line())); break;               // INT (also I00/I01 booleans)
                    case (byte)'L': stack.Add(Integer(BigInteger.Parse(Line().TrimEnd('L')))); break;
                    case (byte)'G': stack.Add(BinaryPrimitives.ReadDoubleBigEndian(Bytes(8))); break;
                    case (byte)'F': stack.Add(double.Parse(Line(), System.Globalization.CultureInfo.InvariantCulture)); break;
                    case (byte)'X': stack.Add(Encoding.UTF8.GetString(Bytes(Length(r.ReadUInt32())))); break;
                    case 0x8c: stack.Add(Encoding.UTF8.GetString(Bytes(r.ReadByte()))); break;
                    case 0x8d: stack.Add(Encoding.UTF8.GetString(Bytes(Length(r.ReadInt64())))); break;
                    case (byte)'T': stack.Add(Encoding.Latin1.GetString(Bytes(Length(r.ReadInt32())))); break;
                    case (byte)'U': stack.Add(Encoding.Latin1.GetString(Bytes(r.ReadByte()))); break;
                    case (byte)'B': stack.Add(Bytes(Length(r.ReadUInt32()))); break;
                    case (byte)'C': stack.Add(Bytes(r.ReadByte())); break;
                    case 0x8e: stack.Add(Bytes(Length(r.ReadInt64()))); break;
                    case (byte)'}': stack.Add(new Dictionary<object, object?>()); break;
                    case (byte)'d': { var items = PopMark(); var d = new Dictionary<object, object?>(); SetItems(d, items); stack.Add(d); break; }
                    case (byte)']': stack.Add(new List<object?>()); break;
                    case (byte)'l': stack.Add(PopMark()); break;
                    case (byte)')': stack.Add(Array.Empty<object?>()); break;
                    case (byte)'t': stack.Add(PopMark().ToArray()); break;
                    case 0x85: { var a = Pop(); stack.Add(new[] { a }); break; }
                    case 0x86: { var b = Pop(); var a = Pop(); stack.Add(new[] { a, b }); break; }
                    case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); stack.Add(new[] { a, b, c }); break; }
                    case (byte)'a': { var v = Pop(); AsList(Top()).Add(v); break; }
                    case (byte)'e': { var items = PopMark(); AsList(Top()).AddRange(items); break; }
                    case (byte)'s': { var v = Pop(); var k = Pop(); SetItems(AsDict(Top()), [k, v]); break; }
                    case (byte)'u': { var items = PopMark(); SetItems(AsDict(Top()), items); break; }
                    case (byte)'q': memo[r.ReadByte()] = Top(); break;               // BINPUT
                    case (byte)'r': memo[r.ReadUInt32()] = Top(); break;             // LONG_BINPUT
                    case (byte)'p': memo[long.Parse(Line())] = Top(); break;         // PUT
                    case 0x94: memo[memo.Count] = Top(); break;                      // MEMOIZE
                    case (byte)'h': stack.Add(Get(r.ReadByte())); break;             // BINGET
                    case (byte)'j': stack.Add(Get(r.ReadUInt32())); break;           // LONG_BINGET
                    case (byte)'g': stack.Add(Get(long.Parse(Line()))); break;       // GET
                    case (byte)'c': { var module = Line(); stack.Add(new Global(module, Line())); break; }
                    case 0x93: { var name = Pop() as string; var module = Pop() as string; stack.Add(new Global(module ?? "?", name ?? "?")); break; }
                    case (byte)'R': { var args = Pop(); var f = Pop(); stack.Add(Call(f, args as object?[] ?? [])); break; }
                    case 0x81: { var args = Pop(); var cls = Pop(); stack.Add(Call(cls, args as object?[] ?? [])); break; } // NEWOBJ
                    case (byte)'b': Pop(); break;                                    // BUILD: object state (e.g. a state dict's _metadata) is not needed
                    case (byte)'Q': stack.Add(Persistent(Pop())); break;             // BINPERSID
                    case (byte)'0': Pop(); break;                                    // POP
                    case (byte)'2': stack.Add(Top()); break;                         // DUP
                    case (byte)'1': PopMark(); break;                                // POP_MARK
                    default:
                        throw new UserError($"{path}: unsupported pickle opcode 0x{op:x2} at byte {r.BaseStream.Position - 1}; not a state dict this reader understands");
                }
            }
        }

        private object? Persistent(object? pid)
        {
            if (pid is not object?[] t || t.Length < 5 || t[0] is not "storage")
                throw new UserError($"{path}: a persistent id that is not a storage; not a state dict this reader understands");
            var type = t[1] as Global;
            if (type is null || type.Module != "torch" || !StorageTypes.TryGetValue(type.Name, out var info))
                throw new UserError($"{path}: unsupported storage type {(object?)type ?? t[1]}");
            if (t[2] is not string key || t[4] is not long numel)
                throw new UserError($"{path}: a malformed storage id");
            if (storages.TryGetValue(key, out var known) && known.Dtype != info.Dtype)
                throw new UserError($"{path}: storage '{key}' is used with two element types");
            storages[key] = new StorageRef(key, info.Dtype, info.Size, numel, 0);
            // Old storage views: (view key, offset, size) into the root storage.
            if (t.Length > 5 && t[5] is object?[] view && view.Length == 3 && view[1] is long viewOffset)
                return new StorageRef(key, info.Dtype, info.Size, view[2] as long? ?? numel, viewOffset);
            return storages[key];
        }

        private object? Call(object? f, object?[] args)
        {
            if (f is not Global g) throw new UserError($"{path}: a pickle calls something that is not a global; not a state dict this reader understands");
            switch (g.ToString())
            {
                case "collections.OrderedDict":
                case "builtins.dict":
                case "__builtin__.dict":
                    return new Dictionary<object, object?>();
                case "torch._utils._rebuild_tensor_v2":
                case "torch._utils._rebuild_tensor":
                    if (args.Length < 4 || args[0] is not StorageRef s || args[1] is not long offset
                        || Ints(args[2]) is not { } size || Ints(args[3]) is not { } stride)
                        throw new UserError($"{path}: a malformed {g} call");
                    return new TensorRef(s, offset, size, stride);
                case "torch._utils._rebuild_parameter":
                case "torch._utils._rebuild_parameter_with_state":
                    return args.Length > 0 && args[0] is TensorRef data ? data : new Opaque(g);
                default:
                    return new Opaque(g);
            }
        }

        private static long[]? Ints(object? o) => o is object?[] t && t.All(x => x is long) ? t.Select(x => (long)x!).ToArray() : null;

        private object? Get(long i) => memo.TryGetValue(i, out var v) ? v : throw new UserError($"{path}: a pickle refers to memo entry {i}, which it never stored; corrupt");

        private List<object?> AsList(object? o) => o as List<object?> ?? throw new UserError($"{path}: a pickle appends to a {Describe(o)}; corrupt or not a state dict");

        private Dictionary<object, object?> AsDict(object? o) => o switch
        {
            Dictionary<object, object?> d => d,
            Opaque => new Dictionary<object, object?>(), // items of an object we do not model go nowhere
            _ => throw new UserError($"{path}: a pickle sets items of a {Describe(o)}; corrupt or not a state dict"),
        };

        private static void SetItems(Dictionary<object, object?> d, List<object?> items)
        {
            for (int i = 0; i + 1 < items.Count; i += 2)
                d[items[i] ?? "None"] = items[i + 1];
        }

        private object? Pop()
        {
            if (stack.Count == 0 || ReferenceEquals(stack[^1], Mark)) throw new UserError($"{path}: a pickle pops an empty stack; corrupt");
            var v = stack[^1];
            stack.RemoveAt(stack.Count - 1);
            return v;
        }

        private object? Top() => stack.Count > 0 ? stack[^1] : throw new UserError($"{path}: a pickle reads an empty stack; corrupt");

        private List<object?> PopMark()
        {
            int m = stack.FindLastIndex(x => ReferenceEquals(x, Mark));
            if (m < 0) throw new UserError($"{path}: a pickle has no mark where it needs one; corrupt");
            var items = stack.GetRange(m + 1, stack.Count - m - 1);
            stack.RemoveRange(m, stack.Count - m);
            return items;
        }

        private byte[] Bytes(int n)
        {
            var b = r.ReadBytes(n);
            return b.Length == n ? b : throw new EndOfStreamException();
        }

        private int Length(long n) => n >= 0 && n <= int.MaxValue && n <= r.BaseStream.Length ? (int)n : throw new UserError($"{path}: a pickle item of {n} bytes; corrupt");

        private string Line()
        {
            var sb = new StringBuilder();
            for (byte b; (b = r.ReadByte()) != (byte)'\n';) sb.Append((char)b);
            return sb.ToString();
        }

        private object Long(int n) => Integer(new BigInteger(Bytes(n), isUnsigned: false, isBigEndian: false));

        private static object TextInt(string s) => s switch { "00" => false, "01" => true, _ => Integer(BigInteger.Parse(s)) };

        /// <summary>Python ints as long when they fit (sizes, strides, counts), else as BigInteger (the magic number).</summary>
        private static object Integer(BigInteger v) => v >= long.MinValue && v <= long.MaxValue ? (long)v : v;
    }
}
