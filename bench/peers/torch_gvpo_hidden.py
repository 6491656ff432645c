"""PyTorch CPU eager peer of gvpoFromHidden for bench/: the same inputs and thread count.

Reads hidden (N*T x H) and weight (V x H) (float32, or bfloat16 bit patterns), targets, mask,
reference token log-probs and rewards that bench/ wrote, and times what a PyTorch user writes:
  linear(hidden, weight) -> log_softmax(z / tau) -> gather -> masked sums -> the GVPO loss of the
  official recipe -> backward to hidden and weight.
Prints one JSON line: median and spread in seconds, peak RSS before and after, versions.
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


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg["threads"])
    N, T, H, V, k = cfg["N"], cfg["T"], cfg["H"], cfg["V"], cfg["k"]
    beta, tau, reps = cfg["beta"], cfg["tau"], cfg["reps"]
    hidden = load(cfg["hidden"], (N * T, H), cfg["dtype"])
    weight = load(cfg["weight"], (V, H), cfg["dtype"])
    targets = torch.from_numpy(np.fromfile(cfg["targets"], dtype=np.int32).astype(np.int64)).view(N * T)
    mask = torch.from_numpy(np.fromfile(cfg["mask"], dtype=np.float32)).view(N, T)
    ref_tok = torch.from_numpy(np.fromfile(cfg["ref"], dtype=np.float64)).view(N, T).float()
    rewards = torch.from_numpy(np.fromfile(cfg["rewards"], dtype=np.float64)).float()
    baseline = peak_rss()

    def step():
        h = hidden.detach().requires_grad_(True)
        w = weight.detach().requires_grad_(True)
        z = torch.nn.functional.linear(h, w).float()
        lp = torch.log_softmax(z / tau, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1).view(N, T)
        rtheta = ((lp * mask).sum(-1) - (ref_tok * mask).sum(-1)) * beta
        adv = rewards - rewards.view(-1, k).mean(-1).repeat_interleave(k)
        centered = rtheta - rtheta.view(-1, k).mean(-1).repeat_interleave(k)
        loss = (0.5 * (centered - adv) ** 2).sum() / (k - 1) / (N // k)
        loss.backward()
        return loss.item()

    step()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    print(json.dumps({
        "gvpoFromHidden": float(np.median(times)), "spread": float(np.max(times) - np.min(times)),
        "peakRssBytes": peak_rss(), "baselineRssBytes": baseline,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
