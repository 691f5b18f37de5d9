#!/usr/bin/env python3
"""Fixtures of the DPM-Solver authors' reference sampler on an exact Gaussian-mixture model.

Usage:
    /usr/bin/python3 tests/tools/dpm_reference.py REFERENCE_DIR OUT.npz

REFERENCE_DIR holds `dpm_solver_pytorch.py` of github.com/LuChengTHU/dpm-solver at
commit 8acf2bb9419165fec8b3ffd01621aa735be5dee3. That file is not ours and is never
committed; only this harness and the numbers it writes are.

Everything runs in float64. The noise schedule is the discrete linear DDPM schedule
(T = 1000, betas = linspace(1e-4, 0.02, 1000)) wrapped by the reference's
NoiseScheduleVP('discrete', ...), so the reference's own piecewise-linear log(alpha)
interpolation defines alpha_t and sigma_t. The model is the exact noise prediction of a
2-D isotropic Gaussian mixture,

    eps*(x_t) = -sigma_t * grad log p_t(x_t),
    p_t = sum_k pi_k N(alpha_t mu_k, (alpha_t^2 s_k^2 + sigma_t^2) I),

computed with softmax responsibilities. The model receives the reference's model time
t_input = (t - 1/N) * 1000 and recovers t = t_input / 1000 + 1/N from it.

The output .npz holds
    xT                                  (100, 2) the start noise, default_rng(2024)
    "{algorithm}|{method}|{order}|{skip}|{steps}"   (100, 2) the sample at t_end
    meta                                1-D uint8, UTF-8 JSON (commit, versions, date,
                                        schedule, mixture, case keys, model evaluations)
"""

import datetime
import json
import os
import sys

import numpy as np
import torch

REFERENCE_COMMIT = "8acf2bb9419165fec8b3ffd01621aa735be5dee3"
REFERENCE_REPO = "https://github.com/LuChengTHU/dpm-solver"

T_TRAIN = 1000
BETA_START, BETA_END = 1e-4, 0.02

WEIGHTS = [0.5, 0.3, 0.2]
MEANS = [[-1.0, 0.5], [1.0, 1.0], [0.5, -1.2]]
STDS = [0.3, 0.2, 0.4]

SEED = 2024
N_SAMPLES = 100

ALGORITHMS = ["dpmsolver", "dpmsolver++"]
METHODS = ["singlestep", "multistep"]
ORDERS = [1, 2, 3]
SKIP_TYPES = ["logSNR", "time_uniform", "time_quadratic"]
STEPS = [8, 12, 20]


class MixtureEpsilon:
    """Exact epsilon-prediction of the Gaussian mixture under the reference's schedule."""

    def __init__(self, ns):
        self.ns = ns
        self.log_w = torch.log(torch.tensor(WEIGHTS, dtype=torch.float64))  # (K,)
        self.mu = torch.tensor(MEANS, dtype=torch.float64)  # (K, D)
        self.s2 = torch.tensor(STDS, dtype=torch.float64) ** 2  # (K,)
        self.calls = 0

    def __call__(self, x, t_input):
        self.calls += 1
        t_input = torch.as_tensor(t_input, dtype=torch.float64).reshape(-1)
        # The reference feeds t_input = (t - 1/N) * 1000 to a discrete-time model.
        t = t_input / 1000.0 + 1.0 / self.ns.total_N
        alpha = self.ns.marginal_alpha(t)  # (B,) or (1,)
        sigma = self.ns.marginal_std(t)
        if alpha.shape[0] != x.shape[0]:
            alpha = alpha.expand(x.shape[0])
            sigma = sigma.expand(x.shape[0])
        d = x.shape[1]
        a = alpha[:, None]  # (B, 1)
        var = a ** 2 * self.s2[None, :] + (sigma ** 2)[:, None]  # (B, K)
        diff = x[:, None, :] - a[:, :, None] * self.mu[None, :, :]  # (B, K, D)
        sq = (diff ** 2).sum(dim=2)  # (B, K)
        log_comp = self.log_w[None, :] - 0.5 * sq / var - 0.5 * d * torch.log(2.0 * np.pi * var)
        resp = torch.softmax(log_comp, dim=1)  # (B, K)
        # grad log p = -sum_k r_k (x - alpha mu_k) / var_k ; eps = -sigma * grad log p
        weighted = (resp / var)[:, :, None] * diff  # (B, K, D)
        return sigma[:, None] * weighted.sum(dim=1)


def main(argv):
    if len(argv) != 3:
        print("usage: /usr/bin/python3 tests/tools/dpm_reference.py REFERENCE_DIR OUT.npz", file=sys.stderr)
        return 2
    reference_dir, out_path = argv[1], argv[2]
    sys.path.insert(0, os.path.abspath(reference_dir))
    import dpm_solver_pytorch as ref  # noqa: E402  (the authors' file, not ours)

    torch.set_default_dtype(torch.float64)

    betas = torch.linspace(BETA_START, BETA_END, T_TRAIN, dtype=torch.float64)
    ns = ref.NoiseScheduleVP("discrete", betas=betas, dtype=torch.float64)
    model = MixtureEpsilon(ns)
    model_fn = ref.model_wrapper(model, ns, model_type="noise")

    x_t = np.random.default_rng(SEED).standard_normal((N_SAMPLES, 2))
    out = {"xT": x_t.astype(np.float64)}
    keys = []
    nfe = {}
    for algorithm in ALGORITHMS:
        solver = ref.DPM_Solver(model_fn, ns, algorithm_type=algorithm)
        for method in METHODS:
            for order in ORDERS:
                for skip in SKIP_TYPES:
                    for steps in STEPS:
                        key = f"{algorithm}|{method}|{order}|{skip}|{steps}"
                        x = torch.tensor(x_t, dtype=torch.float64)
                        model.calls = 0
                        y = solver.sample(
                            x,
                            steps=steps,
                            order=order,
                            skip_type=skip,
                            method=method,
                            lower_order_final=True,
                            denoise_to_zero=False,
                            solver_type="dpmsolver",
                        )
                        y = y.detach().cpu().numpy().astype(np.float64)
                        if y.shape != (N_SAMPLES, 2) or not np.all(np.isfinite(y)):
                            raise RuntimeError(f"{key}: bad output shape {y.shape} or non-finite values")
                        out[key] = y
                        keys.append(key)
                        nfe[key] = model.calls
                        print(f"{key}: {model.calls} model evaluations")

    meta = {
        "reference": {"repo": REFERENCE_REPO, "path": "dpm_solver_pytorch.py", "commit": REFERENCE_COMMIT},
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "dtype": "float64",
        "schedule": {
            "kind": "discrete linear",
            "T": T_TRAIN,
            "beta_start": BETA_START,
            "beta_end": BETA_END,
            "total_N_after_clip": int(ns.total_N),
        },
        "mixture": {"weights": WEIGHTS, "means": MEANS, "stds": STDS},
        "xT": {"generator": "numpy.random.default_rng", "seed": SEED, "shape": [N_SAMPLES, 2]},
        "sample_args": {
            "t_start": None,
            "t_end": None,
            "lower_order_final": True,
            "denoise_to_zero": False,
            "solver_type": "dpmsolver",
        },
        "key_format": "{algorithm}|{method}|{order}|{skip}|{steps}",
        "cases": keys,
        "model_evaluations": nfe,
    }
    out["meta"] = np.frombuffer(json.dumps(meta, indent=1).encode("utf-8"), dtype=np.uint8)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    np.savez_compressed(out_path, **out)
    print(f"wrote {len(keys)} cases to {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
