#!/usr/bin/env python3
"""The PyTorch peer of `diffusion bench`: the toolkit's UNet (src/Diffusion/Models/UNet.cs) re-implemented layer
for layer, timed the way src/Diffusion/Util/ThroughputBenchmark.cs times it.

Written for Debian's python3-torch (PyTorch 1.13, Python 3.11): attention is written out by hand (no
scaled_dot_product_attention), with the same two products as the toolkit's. The config is the demo's
(configs/demo.toml); the parameter count is checked against the toolkit's and the script fails if they differ.

Prints progress on stderr and one JSON line on stdout:
  {"torch": ..., "threads": ..., "parameters": ..., "results": [{"precision": "float32", "train_samples_per_second": ...}, ...], ...}

Also: `unet_peer.py --libtorch-config PATH/libtorch_cpu.so` prints, as one JSON line, the build information of
another libtorch (the toolkit's, from TorchSharp's NuGet package) by calling at::show_config() and friends
through ctypes; it does not import torch.
"""
import argparse
import json
import math
import platform
import re
import sys
import time

# The demo config (configs/demo.toml) and the toolkit's parameter count for it. The demo is class-conditional (10
# classes + the null class embedded and added to the time embedding); the toolkit's bench trains it with no labels,
# i.e. the null class for every row, and so does this peer.
DEMO = dict(in_ch=1, side=28, channels=32, channel_mult=(1, 2, 2), res_blocks=1, attention_resolutions=(7,),
            head_channels=32, norm_groups=8, dropout=0.0, num_classes=10, batch=64, lr=1e-3, weight_decay=0.0,
            timesteps=1000)
TOOLKIT_PARAMETERS = 1_192_641


def log(msg):
    print(f"unet_peer: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Build information of a libtorch shared library, without importing torch (x86-64 SysV, libstdc++ cxx11 ABI).
# ---------------------------------------------------------------------------------------------------------------
def libtorch_config(path):
    import ctypes
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)

    def cxx_string_fn(name):
        # std::string at::NAME(): returned through a hidden pointer to 32 bytes {char* data; size_t size; ...}.
        sym = f"_ZN2at{len(name)}{name}B5cxx11Ev"
        try:
            f = getattr(lib, sym)
        except AttributeError:
            return None
        f.restype = ctypes.c_void_p
        f.argtypes = [ctypes.c_void_p]
        buf = ctypes.create_string_buffer(64)
        f(ctypes.addressof(buf))
        data = ctypes.c_void_p.from_buffer(buf, 0).value
        size = ctypes.c_size_t.from_buffer(buf, 8).value
        return ctypes.string_at(data, size).decode(errors="replace")

    show = cxx_string_fn("show_config") or ""
    out = {
        "library": path,
        "torch_version": _match(r"TORCH_VERSION=([^,\s]+)", show),
        "blas": _match(r"BLAS_INFO=([^,\s]+)", show),
        "mkl": cxx_string_fn("get_mkl_version"),
        "onednn": cxx_string_fn("get_mkldnn_version"),
        "cpu_capability": cxx_string_fn("get_cpu_capability"),
        "openmp": cxx_string_fn("get_openmp_version"),
        "compiler": _match(r"-\s*(GCC [^\n]+)", show),
    }
    print(json.dumps(out))


def _match(pattern, text):
    m = re.search(pattern, text)
    return m.group(1).strip() if m else None


# ---------------------------------------------------------------------------------------------------------------
# The UNet, as in src/Diffusion/Models/UNet.cs.
# ---------------------------------------------------------------------------------------------------------------
def build_model_classes(torch):
    nn = torch.nn
    F = torch.nn.functional

    def groups(g, ch):
        """UNet.Groups: the largest divisor of ch not above g."""
        g = min(g, ch)
        while ch % g != 0:
            g -= 1
        return g

    class GroupNorm(nn.GroupNorm):
        """Float32 statistics on bfloat16 input, output in the input's dtype (as the toolkit's norms under bf16-mixed).
        PyTorch 1.13's CPU autocast leaves group_norm alone and its kernel rejects bfloat16 input with float32 weights."""

        def forward(self, x):
            return super().forward(x.float()).to(x.dtype) if x.dtype != torch.float32 else super().forward(x)

    def group_norm(g, ch):
        return GroupNorm(groups(g, ch), ch, eps=1e-5)  # weight 1, bias 0 as Layers.GroupNorm

    def zero_(m):
        nn.init.zeros_(m.weight)
        nn.init.zeros_(m.bias)
        return m

    def sinusoidal(t, dim, max_period=10000.0):
        """TimeEmbedding.Sinusoidal: [cos | sin] of t·ω_k, ω_k = max_period^(−k/(dim/2))."""
        half = dim // 2
        freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * (-math.log(max_period) / half))
        args = t.to(torch.float32).reshape(-1, 1) * freqs.reshape(1, -1)
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
        if dim % 2 == 1:
            emb = F.pad(emb, (0, 1))
        return emb

    class ResBlock(nn.Module):
        def __init__(self, in_ch, out_ch, emb_dim, dropout, g):
            super().__init__()
            self.norm1 = group_norm(g, in_ch)
            self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
            self.emb_proj = nn.Linear(emb_dim, 2 * out_ch)
            self.norm2 = group_norm(g, out_ch)
            self.dropout = nn.Dropout(dropout)
            self.conv2 = zero_(nn.Conv2d(out_ch, out_ch, 3, padding=1))
            self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

        def forward(self, x, emb):
            h = self.conv1(F.silu(self.norm1(x)))
            e = self.emb_proj(F.silu(emb))
            scale, shift = e.unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
            h = self.norm2(h) * (scale + 1) + shift
            h = self.conv2(self.dropout(F.silu(h)))
            s = x if self.skip is None else self.skip(x)
            return s + h

    class AttentionBlock(nn.Module):
        def __init__(self, ch, head_channels, g):
            super().__init__()
            heads = max(1, ch // head_channels)
            if ch % heads != 0:
                heads = 1
            self.heads = heads
            self.norm = group_norm(g, ch)
            self.qkv = nn.Conv2d(ch, 3 * ch, 1)
            self.proj = zero_(nn.Conv2d(ch, ch, 1))
            self.last_flops_per_example = 0.0

        def forward(self, x, emb):
            b, c, hgt, wid = x.shape
            l = hgt * wid
            self.last_flops_per_example = 2.0 * 2.0 * l * l * c
            q3 = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, l).permute(1, 0, 2, 4, 3)
            q, k, v = q3[0], q3[1], q3[2]                                   # B, heads, L, d
            # scaled_dot_product_attention written out: softmax(q·kᵀ/√d)·v, the same two products.
            w = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
            a = torch.matmul(torch.softmax(w, dim=-1), v)
            h = a.permute(0, 1, 3, 2).reshape(b, c, hgt, wid)
            return x + self.proj(h)

    class Downsample(nn.Module):
        def __init__(self, ch):
            super().__init__()
            self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

        def forward(self, x, emb):
            return self.conv(x)

    class Upsample(nn.Module):
        def __init__(self, ch, side):
            super().__init__()
            self.conv = nn.Conv2d(ch, ch, 3, padding=1)
            self.size = (side, side)

        def forward(self, x, emb):
            return self.conv(F.interpolate(x, size=self.size, mode="nearest"))

    class EmbSequential(nn.Module):
        def __init__(self, *blocks):
            super().__init__()
            self.blocks = nn.ModuleList(blocks)

        def forward(self, x, emb):
            for b in self.blocks:
                x = b(x, emb)
            return x

    class UNet(nn.Module):
        def __init__(self, in_ch, side, channels, channel_mult, res_blocks, attention_resolutions, head_channels,
                     dropout, norm_groups, num_classes=0):
            super().__init__()
            self.base_ch = channels
            self.num_classes = num_classes
            emb_dim = 4 * channels
            self.temb1 = nn.Linear(channels, emb_dim)
            self.temb2 = nn.Linear(emb_dim, emb_dim)
            self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None
            self.conv_in = nn.Conv2d(in_ch, channels, 3, padding=1)

            down, skip_ch, sides = [], [channels], [side]
            ch = channels
            for level, mult in enumerate(channel_mult):
                for _ in range(res_blocks):
                    out_ch = channels * mult
                    layers = [ResBlock(ch, out_ch, emb_dim, dropout, norm_groups)]
                    ch = out_ch
                    if side in attention_resolutions:
                        layers.append(AttentionBlock(ch, head_channels, norm_groups))
                    down.append(EmbSequential(*layers))
                    skip_ch.append(ch)
                    sides.append(side)
                if level != len(channel_mult) - 1:
                    down.append(Downsample(ch))
                    side = (side + 1) // 2
                    skip_ch.append(ch)
                    sides.append(side)
            self.down = nn.ModuleList(down)
            self.middle = EmbSequential(ResBlock(ch, ch, emb_dim, dropout, norm_groups),
                                        AttentionBlock(ch, head_channels, norm_groups),
                                        ResBlock(ch, ch, emb_dim, dropout, norm_groups))
            up = []
            for level in range(len(channel_mult) - 1, -1, -1):
                for i in range(res_blocks + 1):
                    sk = skip_ch.pop()
                    sides.pop()
                    out_ch = channels * channel_mult[level]
                    layers = [ResBlock(ch + sk, out_ch, emb_dim, dropout, norm_groups)]
                    ch = out_ch
                    if side in attention_resolutions:
                        layers.append(AttentionBlock(ch, head_channels, norm_groups))
                    if level > 0 and i == res_blocks:
                        side = sides[-1]
                        layers.append(Upsample(ch, side))
                    up.append(EmbSequential(*layers))
            self.up = nn.ModuleList(up)
            self.norm_out = group_norm(norm_groups, ch)
            self.conv_out = zero_(nn.Conv2d(ch, in_ch, 3, padding=1))

        def forward(self, x, t):
            emb = self.temb2(F.silu(self.temb1(sinusoidal(t, self.base_ch).to(x.dtype))))
            if self.class_emb is not None:  # no labels: the null class (row num_classes) for every example
                null = torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device)
                emb = emb + self.class_emb(null).to(emb.dtype)
            h = self.conv_in(x)
            skips = [h]
            for b in self.down:
                h = b(h, emb)
                skips.append(h)
            h = self.middle(h, emb)
            for b in self.up:
                h = b(torch.cat([h, skips.pop()], dim=1), emb)
            o = self.conv_out(F.silu(self.norm_out(h)))
            return o.to(x.dtype)  # Autocast.Output: the input's dtype (float32 after bfloat16 layers)

    return UNet, AttentionBlock


def forward_flops_per_example(torch, net, shape, attention_cls, batch=2):
    """As src/Diffusion/Util/FlopCounter.cs: convolutions, linear layers and attention's two products (2 FLOPs per MAC)."""
    total = [0.0]
    hooks = []
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out: total.__setitem__(0, total[0] + 2.0 * out.numel() * mod.weight.shape[1] * mod.weight.shape[2] * mod.weight.shape[3])))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out: total.__setitem__(0, total[0] + 2.0 * out.numel() * mod.weight.shape[1])))
    was_training = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(batch, *shape), torch.full((batch,), 500.0))
    for h in hooks:
        h.remove()
    for m in net.modules():
        if isinstance(m, attention_cls):
            total[0] += batch * m.last_flops_per_example
    net.train(was_training)
    return total[0] / batch


# ---------------------------------------------------------------------------------------------------------------
# Timing, as src/Diffusion/Util/ThroughputBenchmark.cs.
# ---------------------------------------------------------------------------------------------------------------
def measure(torch, UNet, cfg, precision, train_steps, sample_steps, sample_batch, channels_last=False):
    bf16 = precision == "bf16-autocast"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    shape = (cfg["in_ch"], cfg["side"], cfg["side"])
    torch.manual_seed(0)
    net = UNet(cfg["in_ch"], cfg["side"], cfg["channels"], cfg["channel_mult"], cfg["res_blocks"],
               cfg["attention_resolutions"], cfg["head_channels"], cfg["dropout"], cfg["norm_groups"],
               cfg["num_classes"])
    net = net.to(memory_format=fmt)
    T = cfg["timesteps"]
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, dim=0)
    sqrt_ab, sqrt_1mab = abar.sqrt().float(), (1 - abar).sqrt().float()
    batch = cfg["batch"]
    gen = torch.Generator().manual_seed(0)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    # Training: full steps (forward, backward, clipping, AdamW), 2 warm-up steps.
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    params = list(net.parameters())
    train_seconds = 0.0
    for i in range(train_steps + 2):
        t0 = time.perf_counter()
        x0 = torch.rand((batch,) + shape, generator=gen) * 2 - 1
        t = torch.randint(0, T, (batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        a, s = sqrt_ab[t].view(-1, 1, 1, 1), sqrt_1mab[t].view(-1, 1, 1, 1)
        xt = (a * x0 + s * eps).contiguous(memory_format=fmt)
        with autocast():
            out = net(xt, t.float())
        loss = (out.float() - eps).pow(2).flatten(1).mean(1).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if i >= 2:
            train_seconds += time.perf_counter() - t0
    if not math.isfinite(loss.item()):
        raise SystemExit(f"unet_peer: {precision}: the training loss is not finite ({loss.item()})")
    train_sps = train_steps * batch / train_seconds

    # Sampling: DDIM (η = 0, x̂0 clipped), uniform spacing, no_grad, after a batch-4 warm-up run.
    net.eval()
    ts = [int(round(v)) for v in torch.linspace(T - 1, 0, sample_steps).tolist()] if sample_steps > 1 else [T - 1]
    ab = abar.float()

    def ddim(xT):
        x = xT
        for j, tj in enumerate(ts):
            a_t = ab[tj]
            a_prev = ab[ts[j + 1]] if j + 1 < len(ts) else torch.tensor(1.0)
            with autocast():
                e = net(x, torch.full((x.shape[0],), float(tj)))
            x0 = ((x - (1 - a_t).sqrt() * e) / a_t.sqrt()).clamp(-1, 1)
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * e
        return x

    sample_eps = None
    if sample_steps > 0:
        with torch.no_grad():
            ddim(torch.randn((4,) + shape).contiguous(memory_format=fmt))
            xT = torch.randn((sample_batch,) + shape).contiguous(memory_format=fmt)
            t0 = time.perf_counter()
            ddim(xT)
            sample_eps = round(sample_batch * len(ts) / (time.perf_counter() - t0), 1)
    return dict(precision=precision, channels_last=channels_last, train_batch=batch, train_steps_timed=train_steps,
                train_samples_per_second=round(train_sps, 2),
                sample_batch=sample_batch, sample_steps=len(ts) if sample_steps > 0 else 0,
                sample_evaluations_per_second=sample_eps,
                final_loss=round(loss.item(), 4))


def matmul_gflops(torch, dtype, n, repeats=2):
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.matmul(a, b)
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = max(best, 2.0 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return round(best, 1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--train-steps", type=int, default=5, help="timed training steps after 2 warm-up steps (default 5)")
    p.add_argument("--sample-steps", type=int, default=10, help="DDIM steps of the timed sampling run (default 10; 0: skip)")
    p.add_argument("--sample-batch", type=int, default=64)
    p.add_argument("--precision", default="float32,bf16-autocast", help="float32, bf16-autocast or both, comma-separated")
    p.add_argument("--channels-last", action="store_true", help="channels-last activations and weights (default: NCHW, as the toolkit)")
    p.add_argument("--matmul-n", type=int, default=1024, help="side of the float32 matmul measured as BLAS yardstick (0: skip)")
    p.add_argument("--libtorch-config", metavar="SO", help="print the build information of this libtorch_cpu.so and exit")
    args = p.parse_args()
    if args.libtorch_config:
        libtorch_config(args.libtorch_config)
        return

    import torch
    torch.set_num_threads(args.threads)
    UNet, AttentionBlock = build_model_classes(torch)
    cfg = DEMO
    shape = (cfg["in_ch"], cfg["side"], cfg["side"])
    net = UNet(cfg["in_ch"], cfg["side"], cfg["channels"], cfg["channel_mult"], cfg["res_blocks"],
               cfg["attention_resolutions"], cfg["head_channels"], cfg["dropout"], cfg["norm_groups"],
               cfg["num_classes"])
    n_params = sum(p.numel() for p in net.parameters())
    log(f"parameters: {n_params:,} (toolkit: {TOOLKIT_PARAMETERS:,})")
    if n_params != TOOLKIT_PARAMETERS:
        raise SystemExit(f"unet_peer: ERROR: the peer UNet has {n_params:,} parameters, the toolkit's demo UNet "
                         f"{TOOLKIT_PARAMETERS:,}: the two networks differ, the comparison would be meaningless")
    fwd_flops = forward_flops_per_example(torch, net, shape, AttentionBlock)
    del net

    show = torch.__config__.show()
    mkldnn_bf16 = None
    try:
        mkldnn_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # not in every version
        pass
    info = {
        "torch": torch.__version__,
        "torch_build": _match(r"TORCH_VERSION=([^,\s]+)", show),
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "blas": _match(r"BLAS_INFO=([^,\s]+)", show),
        "onednn": _match(r"-\s*(Intel\(R\) MKL-DNN[^\n]*|oneDNN[^\n]*)", show),
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "mkldnn_bf16_supported": mkldnn_bf16,
        "cpu_capability": _match(r"CPU capability usage:\s*([^\n]+)", show),
        "parameters": n_params,
        "forward_gflop_per_example": round(fwd_flops / 1e9, 4),
    }
    blas_lib = _linked_blas(torch)
    if blas_lib:
        info["blas_library"] = blas_lib
    log(f"torch {info['torch']}, {info['threads']} threads, BLAS {info['blas']} ({blas_lib}), {info['onednn']}, "
        f"CPU capability {info['cpu_capability']}, mkldnn bf16 {mkldnn_bf16}")
    if args.matmul_n > 0:
        info[f"matmul_{args.matmul_n}_float32_gflops"] = matmul_gflops(torch, torch.float32, args.matmul_n)
        log(f"matmul {args.matmul_n}³ float32: {info[f'matmul_{args.matmul_n}_float32_gflops']} GFLOP/s")

    results = []
    for precision in [s.strip() for s in args.precision.split(",") if s.strip()]:
        if precision not in ("float32", "bf16-autocast"):
            raise SystemExit(f"unet_peer: --precision: expected float32 or bf16-autocast, got '{precision}'")
        r = measure(torch, UNet, cfg, precision, args.train_steps, args.sample_steps, args.sample_batch, args.channels_last)
        r["train_gflops"] = round(3 * fwd_flops * r["train_samples_per_second"] / 1e9, 1)
        log(f"{precision:14s} train {r['train_samples_per_second']:8.1f} samples/s ({r['train_gflops']} GFLOP/s), "
            f"sampling {r['sample_evaluations_per_second']} evaluations/s")
        results.append(r)
    info["results"] = results
    print(json.dumps(info), flush=True)


def _linked_blas(torch):
    """The BLAS library the process actually mapped (Debian's torch links libblas.so.3, an alternatives link)."""
    try:
        import os
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
        return ", ".join(sorted(os.path.realpath(l) for l in libs)) or None
    except OSError:
        return None


if __name__ == "__main__":
    main()
