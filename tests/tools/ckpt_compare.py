"""Compares two run folders' checkpoint.ckpt (step, model, EMA and optimizer bytes) and log.jsonl (every field but the
throughput); prints the verdict. With --step FILE prints only the checkpoint's step. Reads checkpoint format 2."""
import hashlib, json, struct, sys


def read(path):
    with open(path, "rb") as f:
        b = f.read()
    assert b[:8] == b"DIFFCKPT", f"{path}: not a checkpoint"
    version, = struct.unpack_from("<i", b, 8)
    assert version == 2, f"{path}: format {version}"
    p = 12
    n, = struct.unpack_from("<i", b, p); p += 4
    header = json.loads(b[p:p + n]); p += n + 32
    count, = struct.unpack_from("<i", b, p); p += 4
    sections = {}
    for _ in range(count):
        ln = 0; shift = 0
        while True:  # .NET BinaryWriter string: 7-bit encoded length
            c = b[p]; p += 1
            ln |= (c & 0x7F) << shift; shift += 7
            if c < 0x80: break
        name = b[p:p + ln].decode(); p += ln
        size, = struct.unpack_from("<q", b, p); p += 8
        sections[name] = b[p:p + size]; p += size + 32
    return header, sections


def log(path):
    out = []
    for line in open(path):
        if line.strip():
            e = json.loads(line)
            out.append({k: v for k, v in e.items() if "per_s" not in k and "second" not in k})
    return out


if sys.argv[1] == "--step":
    print(read(sys.argv[2])[0]["step"]); sys.exit(0)
a, b = sys.argv[1], sys.argv[2]
(ha, sa), (hb, sb) = read(a + "/checkpoint.ckpt"), read(b + "/checkpoint.ckpt")
ok = True
print(f"step: {ha['step']} vs {hb['step']}")
ok &= ha["step"] == hb["step"]
for name in ("model", "ema", "optimizer"):
    same = sa[name] == sb[name]
    ok &= same
    print(f"{name}: {'identical' if same else 'DIFFERENT'} (sha256 {hashlib.sha256(sa[name]).hexdigest()[:16]} vs {hashlib.sha256(sb[name]).hexdigest()[:16]})")
la, lb = log(a + "/log.jsonl"), log(b + "/log.jsonl")
same = la == lb
ok &= same
print(f"log: {len(la)} vs {len(lb)} entries, {'identical' if same else 'DIFFERENT'} (throughput excluded)")
print("identical" if ok else "NOT identical")
sys.exit(0 if ok else 1)
