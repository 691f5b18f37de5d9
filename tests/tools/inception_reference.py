#!/usr/bin/env python3
"""Independent reference for the FID Inception-v3 of src/Diffusion/Metrics/Features/InceptionFid.cs.

Builds torchvision's inception_v3 with the FID-specific blocks patched in (as pytorch-fid does:
average pooling without padding counts in the A, C and first E blocks, max pooling in the second
E block's pool branch, 1008 classes), fills EVERY parameter and BatchNorm buffer from a formula of
its state-dict name and element index, feeds a formula image of a non-299 size through the FID
preprocessing (bilinear resize to 299, align_corners=False; the input is already in [-1, 1]) and
writes the 2048-d pool features. The C# test fills its own network from the same formula and
compares (tests/Diffusion.Tests/InceptionFidTests.cs), so it runs without Python.

This is a test helper, not a product dependency. Regenerate the fixture with Debian's packages:

    apt-get install python3-torch python3-torchvision
    /usr/bin/python3 tests/tools/inception_reference.py tests/Diffusion.Tests/Fixtures/inception-fid-reference.npy

Optionally --save-pth FILE writes the formula weights as a PyTorch state dict, the format of
pytorch-fid's pt_inception-2015-12-05 weights, to try the README's conversion snippet on.

The formula (mirrored in C# by InceptionFid.FillDeterministic / SharedFormula):
  h = FNV-1a 64 of the UTF-8 name; for element i (row-major):
  z = h + (i + 1) * 0x9E3779B97F4A7C15 (mod 2^64), then the splitmix64 finaliser;
  u = (z >> 11) * 2^-53 in [0, 1), and by kind (all computed in float64, then cast to float32):
    conv weight  (2u - 1) * sqrt(6 / fan_in)     fan_in = in_channels * kh * kw
    bn weight    0.75 + 0.5u
    bn bias      0.2 * (2u - 1)
    running_mean 0.1 * (2u - 1)
    running_var  0.5 + u
    fc weight    (2u - 1) / sqrt(2048);  fc bias 0
  input image "input" of shape (2, 3, 64, 80): 2u - 1.
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.inception import InceptionA, InceptionC, InceptionE

M64 = (1 << 64) - 1


def fnv1a64(name):
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & M64
    return h


def uniform(name, n):
    """u_i in [0, 1) for i = 0 … n-1, exactly as the C# side computes it."""
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(fnv1a64(name)) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)


def formula(name, shape):
    n = int(np.prod(shape))
    u = uniform(name, n)
    if name == "fc.bias":
        v = np.zeros(n)
    elif name == "fc.weight":
        v = (2 * u - 1) / np.sqrt(2048.0)
    elif name.endswith("conv.weight"):
        fan_in = shape[1] * shape[2] * shape[3]
        v = (2 * u - 1) * np.sqrt(6.0 / fan_in)
    elif name.endswith("bn.weight"):
        v = 0.75 + 0.5 * u
    elif name.endswith("bn.bias"):
        v = 0.2 * (2 * u - 1)
    elif name.endswith("running_mean"):
        v = 0.1 * (2 * u - 1)
    elif name.endswith("running_var"):
        v = 0.5 + u
    else:
        raise ValueError("no formula for " + name)
    return v.astype(np.float32).reshape(shape)


# The FID blocks, patched the way pytorch-fid patches torchvision's (TensorFlow's graph differs).
class FidA(InceptionA):
    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b5, b3, bp], 1)


class FidC(InceptionC):
    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b7, bd, bp], 1)


class FidE(InceptionE):
    def __init__(self, in_channels, max_pool):
        super().__init__(in_channels)
        self.max_pool = max_pool

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.max_pool:   # Mixed_7c of the FID graph
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([b1, b3, bd, self.branch_pool(pooled)], 1)


def fid_inception():
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    net.Mixed_5b = FidA(192, pool_features=32)
    net.Mixed_5c = FidA(256, pool_features=64)
    net.Mixed_5d = FidA(288, pool_features=64)
    net.Mixed_6b = FidC(768, channels_7x7=128)
    net.Mixed_6c = FidC(768, channels_7x7=160)
    net.Mixed_6d = FidC(768, channels_7x7=160)
    net.Mixed_6e = FidC(768, channels_7x7=192)
    net.Mixed_7b = FidE(1280, max_pool=False)
    net.Mixed_7c = FidE(2048, max_pool=True)
    return net.eval()


def pool_features(net, x):
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    for name in ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                 "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                 "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]:
        x = getattr(net, name)(x)
    return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    torch.set_num_threads(2)
    net = fid_inception()
    state = net.state_dict()
    filled = {k: torch.from_numpy(formula(k, tuple(v.shape))) if not k.endswith("num_batches_tracked") else v
              for k, v in state.items()}
    net.load_state_dict(filled)
    if "--save-pth" in argv:
        torch.save(net.state_dict(), argv[argv.index("--save-pth") + 1])
    x = torch.from_numpy((2 * uniform("input", 2 * 3 * 64 * 80) - 1).astype(np.float32).reshape(2, 3, 64, 80))
    with torch.no_grad():
        f = pool_features(net, x).numpy().astype(np.float32)
    np.save(argv[1], f)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}: features {f.shape}, "
          f"mean {f.mean():.6f}, std {f.std():.6f}, first {f[0, :4]} -> {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
