"""PyTorch CPU peers of tokenLogprobsFromHidden for bench/: the same inputs and thread count.

Reads hidden (R x H) and weight (V x H) (float32, or bfloat16 bit patterns), targets and the
upstream gradients gl, gH (float32) that bench/ wrote, and times what a PyTorch user writes for
per-token log-probs and entropies from hidden states, with the loss sum(gl * l + gH * H):
  eager    linear(hidden, weight) -> log_softmax(z / tau) -> gather and entropy -> backward
           (the R x V logits, their log-softmax and its gradient all materialized)
  chunked  the same over 1024-row chunks with nothing kept between the passes: the forward runs
           each chunk under no_grad, the backward recomputes each chunk's logits and
           differentiates it (TRL's chunked loss), so one chunk's logits exist at a time
Each is timed as a forward alone (no_grad) and as a forward + backward. Prints one JSON line:
medians and spreads in seconds, peak RSS before and after, versions.
"""
import json
import sys
import time

import numpy as np
import torch


def peak_rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def load(path, shape, dtype):
    if dtype == "bfloat16":
        bits = np.fromfile(path, dtype=np.uint16).astype(np.int32) << 16
        return torch.from_numpy(bits.view(np.float32)).view(*shape).to(torch.bfloat16)
    return torch.from_numpy(np.fromfile(path, dtype=np.float32)).view(*shape)


def head(h, w, y, tau):
    """Per-row log-prob of the target and entropy, from the materialized logits of h."""
    logp = torch.log_softmax(torch.nn.functional.linear(h, w).float() / tau, dim=-1)
    lp = logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    ent = -(logp.exp() * logp).sum(-1)
    return lp, ent


class ChunkedHead(torch.autograd.Function):
    """l and H chunk by chunk; the backward recomputes each chunk (nothing of R x V is kept)."""

    @staticmethod
    def forward(ctx, h, w, y, tau, chunk):
        ctx.save_for_backward(h, w, y)
        ctx.tau, ctx.chunk = tau, chunk
        outs = [head(h[i:i + chunk], w, y[i:i + chunk], tau) for i in range(0, h.shape[0], chunk)]
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    @staticmethod
    def backward(ctx, gl, gh):
        h, w, y = ctx.saved_tensors
        dh, dw = torch.zeros_like(h, dtype=torch.float32), torch.zeros_like(w, dtype=torch.float32)
        for i in range(0, h.shape[0], ctx.chunk):
            with torch.enable_grad():
                hc = h[i:i + ctx.chunk].detach().requires_grad_(True)
                wc = w.detach().requires_grad_(True)
                lp, ent = head(hc, wc, y[i:i + ctx.chunk], ctx.tau)
                g = torch.autograd.grad((gl[i:i + ctx.chunk] * lp + gh[i:i + ctx.chunk] * ent).sum(), (hc, wc))
            dh[i:i + ctx.chunk] = g[0]
            dw += g[1]
        return dh.to(h.dtype), dw.to(w.dtype), None, None, None


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg["threads"])
    R, H, V, tau, reps = cfg["rows"], cfg["H"], cfg["V"], cfg["tau"], cfg["reps"]
    hidden = load(cfg["hidden"], (R, H), cfg["dtype"])
    weight = load(cfg["weight"], (V, H), cfg["dtype"])
    y = torch.from_numpy(np.fromfile(cfg["targets"], dtype=np.int32).astype(np.int64)).view(R)
    gl = torch.from_numpy(np.fromfile(cfg["gl"], dtype=np.float32)).view(R)
    gh = torch.from_numpy(np.fromfile(cfg["gh"], dtype=np.float32)).view(R)
    chunked = cfg["mode"] == "chunked"
    baseline = peak_rss()

    def fwd():
        with torch.no_grad():
            if chunked:
                for i in range(0, R, 1024):
                    head(hidden[i:i + 1024], weight, y[i:i + 1024], tau)
            else:
                head(hidden, weight, y, tau)

    def fwd_bwd():
        h = hidden.detach().requires_grad_(True)
        w = weight.detach().requires_grad_(True)
        lp, ent = ChunkedHead.apply(h, w, y, tau, 1024) if chunked else head(h, w, y, tau)
        (gl * lp + gh * ent).sum().backward()

    def timed(fn):
        fn()  # warm-up
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
        return float(np.median(t)), float(np.max(t) - np.min(t))

    f, fs = timed(fwd)
    fb, fbs = timed(fwd_bwd)
    print(json.dumps({
        "forward": f, "forwardSpread": fs, "forwardBackward": fb, "forwardBackwardSpread": fbs,
        "peakRssBytes": peak_rss(), "baselineRssBytes": baseline,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
