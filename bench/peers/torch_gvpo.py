"""PyTorch CPU eager peer for bench/: the same inputs, the same thread count.

Reads the logits (float32 or bfloat16 bits), targets, mask, reference token log-probs and rewards
that bench/ wrote, then times, as a PyTorch user writes them:
  tokenLogprobs:   log_softmax(logits / tau) + gather            (no grad)
  gvpoFromLogits:  the same with grad, masked sums, the GVPO loss of the official recipe
                   (0.5 * ((r - mean_g r) - (R - mean_g R))^2 / (k - 1), summed), backward
Prints one JSON line: medians in seconds, peak RSS, versions.
"""
import json
import resource
import sys
import time

import numpy as np
import torch


def peak_rss():
    """VmHWM of this process image (getrusage's maxrss carries the forking parent's peak on Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg["threads"])
    N, T, V, k = cfg["N"], cfg["T"], cfg["V"], cfg["k"]
    beta, tau, reps = cfg["beta"], cfg["tau"], cfg["reps"]
    if cfg["dtype"] == "bfloat16":
        bits = np.fromfile(cfg["logits"], dtype=np.uint16).astype(np.int32) << 16
        logits = torch.from_numpy(bits.view(np.float32)).view(N, T, V).to(torch.bfloat16)
    else:
        logits = torch.from_numpy(np.fromfile(cfg["logits"], dtype=np.float32)).view(N, T, V)
    targets = torch.from_numpy(np.fromfile(cfg["targets"], dtype=np.int32).astype(np.int64)).view(N, T)
    mask = torch.from_numpy(np.fromfile(cfg["mask"], dtype=np.float32)).view(N, T)
    ref_tok = torch.from_numpy(np.fromfile(cfg["ref"], dtype=np.float64)).view(N, T).float()
    rewards = torch.from_numpy(np.fromfile(cfg["rewards"], dtype=np.float64)).float()

    baseline = peak_rss()

    def token_logprobs():
        with torch.no_grad():
            lp = torch.log_softmax(logits.float() / tau, dim=-1)
            return lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)

    def gvpo_step():
        z = logits.detach().float().requires_grad_(True)
        lp = torch.log_softmax(z / tau, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        rtheta = ((lp * mask).sum(-1) - (ref_tok * mask).sum(-1)) * beta
        adv = rewards - rewards.view(-1, k).mean(-1).repeat_interleave(k)
        centered = rtheta - rtheta.view(-1, k).mean(-1).repeat_interleave(k)
        loss = (0.5 * (centered - adv) ** 2).sum() / (k - 1)
        loss.backward()
        return loss.item(), z.grad

    def median(fn):
        fn()  # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return float(np.median(times)), float(np.max(times) - np.min(times))

    tok_med, tok_spread = median(token_logprobs)
    loss, grad = gvpo_step()
    step_med, step_spread = median(gvpo_step)
    if cfg.get("grad_out"):
        grad.numpy().astype(np.float32).tofile(cfg["grad_out"])
    print(json.dumps({
        "tokenLogprobs": tok_med, "tokenLogprobsSpread": tok_spread,
        "gvpoFromLogits": step_med, "gvpoFromLogitsSpread": step_spread,
        "loss": loss, "peakRssBytes": peak_rss(),
        "baselineRssBytes": baseline,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
