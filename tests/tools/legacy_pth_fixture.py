"""Writes tests/Diffusion.Tests/Fixtures/legacy-state-dict.pth, legacy-inception-names.pth and legacy-module.pth: small state dicts in
PyTorch's LEGACY torch.save container (before 1.6: a sequence of pickles, not a zip), as pytorch-fid's
pt_inception-2015-12-05-6726825d.pth (2019) is written. Every value is a formula of its index that the C# tests
(LegacyPthTests) recompute:

  legacy-state-dict.pth (an OrderedDict, as module.state_dict() returns):
    "a.weight"   float32 [2, 3, 4]   a[i] = (i - 7) / 8                       (i = flat index)
    "a.bias"     float32 [5]         b[i] = i * 0.25 - 1
    "t.weight"   float32 [3, 5]      the transpose of a contiguous [5, 3] with m[r, c] = 10 r + c (saved as the view:
                                     strides (1, 3))
    "s.weight"   float32 [2, 3]      a strided slice of a [4, 6] with v = 0.5 i: rows 1..2, columns 0, 2, 4
                                     (storage offset 6, strides (6, 2)); it shares its storage with "s.full"
    "s.full"     float32 [4, 6]      v[i] = 0.5 i
    "d.running"  float64 [3]         1/3, -2/7, 1e-300
    "bn.num_batches_tracked" int64 []  1234567890123
    "i.index"    int64 [4]           -2^40, -1, 0, 2^53 + 1

  legacy-inception-names.pth: {"state_dict": {...}} with two of pytorch-fid's real names,
    "Conv2d_1a_3x3.conv.weight" float32 [32, 3, 3, 3]  0.001 * (i mod 97) - 0.05
    "Conv2d_1a_3x3.bn.num_batches_tracked" int64 []    0

  legacy-module.pth: a real module's state_dict() (an OrderedDict carrying _metadata, pickled with BUILD) of
    Sequential(Conv2d(2, 3, 1), BatchNorm2d(3)), every float tensor of n elements set to 0.5 i - 1 in its shape,
    "1.num_batches_tracked" = 5, plus the other storage types:
    "x.half"  float16 [4]  0.5, -2, 65504, 2^-24
    "x.bf16"  bfloat16 [4] 1, -3.5, 2^100, 2^-7
    "x.bool"  bool [3]     True, False, True
    "x.int32" int32 [3]    -5, 7, 2^31 - 1

Run with Debian's python3-torch (1.13):
  /usr/bin/python3 tests/tools/legacy_pth_fixture.py tests/Diffusion.Tests/Fixtures
"""
import collections
import os
import sys

import torch


def main(out_dir):
    sd = collections.OrderedDict()
    sd["a.weight"] = ((torch.arange(24, dtype=torch.float32) - 7) / 8).reshape(2, 3, 4)
    sd["a.bias"] = torch.arange(5, dtype=torch.float32) * 0.25 - 1
    m = (10 * torch.arange(5).reshape(5, 1) + torch.arange(3).reshape(1, 3)).to(torch.float32)
    sd["t.weight"] = m.t()
    full = torch.arange(24, dtype=torch.float32).reshape(4, 6) * 0.5
    sd["s.weight"] = full[1:3, 0:6:2]
    sd["s.full"] = full
    sd["d.running"] = torch.tensor([1 / 3, -2 / 7, 1e-300], dtype=torch.float64)
    sd["bn.num_batches_tracked"] = torch.tensor(1234567890123, dtype=torch.int64)
    sd["i.index"] = torch.tensor([-(2 ** 40), -1, 0, 2 ** 53 + 1], dtype=torch.int64)
    assert not sd["t.weight"].is_contiguous() and sd["t.weight"].stride() == (1, 3)
    assert sd["s.weight"].storage_offset() == 6 and sd["s.weight"].stride() == (6, 2)
    torch.save(sd, os.path.join(out_dir, "legacy-state-dict.pth"), _use_new_zipfile_serialization=False)

    inner = collections.OrderedDict()
    inner["Conv2d_1a_3x3.conv.weight"] = ((torch.arange(32 * 27) % 97).to(torch.float32) * 0.001 - 0.05).reshape(32, 3, 3, 3)
    inner["Conv2d_1a_3x3.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.int64)
    torch.save({"state_dict": inner}, os.path.join(out_dir, "legacy-inception-names.pth"), _use_new_zipfile_serialization=False)

    module = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    msd = module.state_dict()
    with torch.no_grad():
        for k, v in msd.items():
            if v.is_floating_point():
                v.copy_((torch.arange(v.numel(), dtype=torch.float32) * 0.5 - 1).reshape(v.shape))
            else:
                v.fill_(5)
    assert hasattr(msd, "_metadata")
    msd["x.half"] = torch.tensor([0.5, -2, 65504, 2 ** -24], dtype=torch.float16)
    msd["x.bf16"] = torch.tensor([1, -3.5, 2 ** 100, 2 ** -7], dtype=torch.bfloat16)
    msd["x.bool"] = torch.tensor([True, False, True])
    msd["x.int32"] = torch.tensor([-5, 7, 2 ** 31 - 1], dtype=torch.int32)
    torch.save(msd, os.path.join(out_dir, "legacy-module.pth"), _use_new_zipfile_serialization=False)

    # The files really are the legacy container, and torch reads back what was saved.
    for name in ("legacy-state-dict.pth", "legacy-inception-names.pth", "legacy-module.pth"):
        with open(os.path.join(out_dir, name), "rb") as f:
            assert f.read(2) != b"PK", name
    back = torch.load(os.path.join(out_dir, "legacy-state-dict.pth"))
    for k, v in sd.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/Diffusion.Tests/Fixtures")
