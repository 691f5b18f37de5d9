#!/usr/bin/env python3
"""A safetensors reader and writer that shares no code with the C# side (TorchSharp.PyBridge), written from the
format's specification: an 8-byte little-endian unsigned header length N, N bytes of UTF-8 JSON mapping each
tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data that follows the header;
an optional "__metadata__" maps strings to strings), then the raw little-endian tensor data, without holes.

  /usr/bin/python3 tests/tools/safetensors_fixture.py [OUT]
      writes the known state dict below to OUT (default tests/Diffusion.Tests/Fixtures/safetensors-fixture.safetensors);
      SafetensorsTests computes the same values independently in C# and compares every one.
  /usr/bin/python3 tests/tools/safetensors_fixture.py --check FILE
      reads FILE (e.g. the model.safetensors of diffusion export), checks the layout and prints each tensor's
      name, dtype, shape, sum and SHA-256 of its bytes; where the safetensors package is installed it reads FILE
      with it too and compares (Debian 12 has none: skipped).

Needs only NumPy (Debian: python3-numpy). The C# tests never run this script.
"""
import hashlib
import json
import os
import struct
import sys

import numpy as np

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
NAMES = {np.dtype(v).str: k for k, v in DTYPES.items()}
DEFAULT_OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Diffusion.Tests", "Fixtures", "safetensors-fixture.safetensors"))


def known_state_dict():
    """The fixture's tensors; SafetensorsTests.KnownStateDict repeats these formulas in C#."""
    i36 = np.arange(3 * 3 * 2 * 2, dtype=np.int64)
    i12 = np.arange(12, dtype=np.int64)
    return {
        # dyadic values: exact in float32
        "conv.weight": (((i36 * 7) % 23 - 11) / 16.0).astype(np.float32).reshape(3, 3, 2, 2),
        # i·0.1 rounded from float64 to float32
        "norm.bias": (np.arange(5, dtype=np.int64) * 0.1 - 0.2).astype(np.float32),
        "scale": np.array(-1.5, dtype=np.float32),
        "table": ((i12 - 5) / 3.0).astype(np.float64).reshape(3, 4),
        "steps": np.array([-3, 2 ** 40 + 5], dtype=np.int64),
    }


def write(path, tensors, metadata=None):
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        a = np.array(tensors[name], order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        data = a.tobytes()
        header[name] = {"dtype": NAMES[a.dtype.str], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the reference implementation pads the header with spaces to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} runs past the end of the file ({len(raw)} bytes)")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", None)
    tensors, spans = {}, []
    for name, e in header.items():
        if e["dtype"] not in DTYPES:
            raise ValueError(f"{path}: tensor {name}: unknown dtype {e['dtype']}")
        dt = np.dtype(DTYPES[e["dtype"]])
        shape = tuple(int(s) for s in e["shape"])
        begin, end = (int(v) for v in e["data_offsets"])
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * dt.itemsize or begin < 0 or end > len(data):
            raise ValueError(f"{path}: tensor {name}: offsets [{begin}, {end}] do not hold {count} values of {e['dtype']}")
        tensors[name] = np.frombuffer(data, dtype=dt, count=count, offset=begin).reshape(shape)
        spans.append((begin, end))
    spans.sort()
    covered = 0
    for begin, end in spans:
        if begin != covered:
            raise ValueError(f"{path}: the data has a hole or an overlap at byte {covered}")
        covered = end
    if covered != len(data):
        raise ValueError(f"{path}: {len(data) - covered} bytes after the last tensor")
    return tensors, metadata, header


def check(path):
    tensors, metadata, header = read(path)
    print(f"{path}: {len(tensors)} tensors, {sum(a.size for a in tensors.values())} values, metadata {metadata}")
    for name, a in tensors.items():
        finite = bool(np.all(np.isfinite(a))) if a.dtype.kind == "f" else True
        digest = hashlib.sha256(a.tobytes()).hexdigest()[:16]
        print(f"  {name:40s} {header[name]['dtype']:4s} {str(list(a.shape)):16s} sum {float(a.astype(np.float64).sum()):+.9e}"
              f"  |x|max {float(np.abs(a.astype(np.float64)).max()) if a.size else 0.0:.6e}  sha256 {digest}{'' if finite else '  NOT FINITE'}")
    try:
        from safetensors.numpy import load_file
    except ImportError:
        print("safetensors package: not installed, second reading skipped")
        return 0
    other = load_file(path)
    same = set(other) == set(tensors) and all(np.array_equal(other[k], tensors[k]) for k in tensors)
    print(f"safetensors package: {'same tensors' if same else 'DIFFERENT tensors'}")
    return 0 if same else 1


def main(argv):
    if len(argv) == 2 and argv[0] == "--check":
        return check(argv[1])
    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        print(__doc__)
        return 2
    out = argv[0] if argv else DEFAULT_OUT
    write(out, known_state_dict(), metadata={"format": "pt", "source": "tests/tools/safetensors_fixture.py"})
    return check(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
