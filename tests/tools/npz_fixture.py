#!/usr/bin/env python3
"""Writes Fixtures/numpy-savez.npz and Fixtures/numpy-savez-compressed.npz with NumPy itself, so that the
C# .npz reader is tested against NumPy's own output (NpzTests). Regenerate with:
    /usr/bin/python3 tests/tools/npz_fixture.py tests/Diffusion.Tests/Fixtures
"""
import os
import sys

import numpy as np

out = sys.argv[1]
arrays = {
    "mu": np.array([0.5, -1.25, 3.0], dtype=np.float64),
    "sigma": np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.25], [0.0, 0.25, 3.0]], dtype=np.float64),
    "Mixed_5b.branch1x1.conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) / 8,
    "Mixed_5b.branch1x1.bn.num_batches_tracked": np.array(7, dtype=np.int64),
}
np.savez(os.path.join(out, "numpy-savez.npz"), **arrays)
np.savez_compressed(os.path.join(out, "numpy-savez-compressed.npz"), **arrays)
