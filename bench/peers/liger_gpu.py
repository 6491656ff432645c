"""Liger-Kernel on the GPU, same sizes as native/tests/bench_cuda.cu: its Triton GRPO loss over
bfloat16 logits (N*T = 16384, V = 151936) and its chunked fused-linear GRPO loss (N*T = 4096, a
quarter of each sequence masked, H = 2048, V = 32768, bfloat16 hidden states and weight), each
forward + backward, as its own benchmarks call them (the logits kernel in place, the chunked loss
compiled). Liger is not installed on the GPU machine and is never part of this repository: its
source is brought beside it and named by LIGER_SRC (the folder that holds `liger_kernel`).
Appends markdown rows to RESULTS-gpu.md (scripts/gpu-check.sh).

GRPO is not GVPO: these are the nearest fused peers (a per-token clipped ratio and KL against
given reference log-probs, on-policy, beta = 0.04) and are timed, not compared for values."""
import os
import sys

import torch

from gpu_timing import median_ms

sys.path.insert(0, os.environ.get("LIGER_SRC", "liger/src"))
dev = "cuda"


def logits_loss():
    from liger_kernel.ops.grpo_loss import GrpoLossFunction

    N, T, V = 64, 256, 151936
    g = torch.Generator(device=dev).manual_seed(0)
    # Liger takes the logits of T + 1 positions and drops the last, as a causal LM emits them.
    pristine = ((torch.rand(N, T + 1, V, device=dev, generator=g) - 0.5) * 8).to(torch.bfloat16)
    logits = pristine.clone()
    ids = torch.randint(0, V, (N, T), device=dev, generator=g)
    mask = (torch.arange(T, device=dev) >= T // 4).float().expand(N, T).contiguous()
    adv = torch.randn(N, device=dev, generator=g)
    ref = -torch.rand(N, T, device=dev, generator=g) * 5

    def step():
        z = logits.requires_grad_(True)
        loss, _, _ = GrpoLossFunction.apply(z, None, ref, ids, adv, mask, 1.0, 0.04, 0.2, 0.2, True, "grpo")
        loss.backward()
        logits.grad = None

    # In place, the backward overwrites the logits with their gradient: each timed call starts
    # from a fresh copy of them, made outside the timed region.
    ms = median_ms(step, 10, before=lambda: logits.data.copy_(pristine))
    peak = torch.cuda.max_memory_allocated() / 1e9
    print(f"| Liger-Kernel Triton `grpo_loss` (in place, forward + backward; same GPU, N*T = {N * T}, V = {V}) "
          f"| {ms:.3f} | | | | peak {peak:.1f} GB |")


def fused_linear_loss():
    from liger_kernel.chunked_loss.grpo_loss import LigerFusedLinearGRPOLoss

    N, T, H, V = 16, 256, 2048, 32768
    g = torch.Generator(device=dev).manual_seed(0)
    hidden = (torch.randn(N, T, H, device=dev, generator=g) * 0.01).to(torch.bfloat16)
    weight = (torch.randn(V, H, device=dev, generator=g) * 0.001).to(torch.bfloat16)
    ids = (torch.arange(N * T, device=dev) * 7919 % V).view(N, T)
    mask = (torch.arange(T, device=dev) >= T // 4).float().expand(N, T).contiguous()
    adv = torch.randn(N, device=dev, generator=g)
    ref = -torch.rand(N, T, device=dev, generator=g) * 5
    loss_fn = LigerFusedLinearGRPOLoss(beta=0.04, compiled=True, use_ref_model=True, loss_type="grpo")

    def step():
        h = hidden.detach().requires_grad_(True)
        w = weight.detach().requires_grad_(True)
        loss = loss_fn(h, w, ids, mask, adv, ref_per_token_logps=ref)[0]
        loss.backward()
        return h.grad, w.grad

    step()  # torch.compile's first call, not timed
    ms = median_ms(step, 5)
    live = int(mask.sum().item())
    tflops = 4 * 2 * live * H * V / (ms * 1e-3) / 1e12
    peak = torch.cuda.max_memory_allocated() / 1e9
    print(f"| Liger-Kernel chunked `LigerFusedLinearGRPOLoss` (compiled), device tensors (peak {peak:.1f} GB) "
          f"| {ms:.3f} | {tflops:.1f} |")


which = sys.argv[1] if len(sys.argv) > 1 else "both"
for name, fn in (("logits", logits_loss), ("hidden", fused_linear_loss)):
    if which in (name, "both"):
        try:
            fn()
        except Exception as e:  # a peer that fails to run is reported, not hidden
            print(f"| Liger-Kernel {name} peer failed: {type(e).__name__}: {str(e)[:200]} | | |")
        torch.cuda.empty_cache()
