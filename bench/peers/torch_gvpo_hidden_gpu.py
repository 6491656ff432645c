"""PyTorch eager on the GPU for the fused LM head, same sizes as bench_head in
native/tests/bench_cuda.cu (N*T = 4096, a quarter of each sequence masked, H = 2048, V = 32768,
bfloat16 hidden states and weight): linear, log_softmax in float32, gather, the GVPO loss,
backward to both. Appends a markdown row to RESULTS-gpu.md (scripts/gpu-check.sh)."""
import torch

from gpu_timing import median_ms

N, T, H, V, k, beta = 16, 256, 2048, 32768, 8, 0.1
dev = "cuda"
g = torch.Generator(device=dev).manual_seed(0)
hidden = (torch.randn(N * T, H, device=dev, generator=g) * 0.01).to(torch.bfloat16)
weight = (torch.randn(V, H, device=dev, generator=g) * 0.001).to(torch.bfloat16)
targets = torch.arange(N * T, device=dev) * 7919 % V
mask = (torch.arange(T, device=dev) >= T // 4).float().repeat(N)
ref = -1000.0 - torch.arange(N, device=dev, dtype=torch.float32)
rewards = (torch.arange(N, device=dev) % 3 == 0).float()


def step():
    h = hidden.detach().requires_grad_(True)
    w = weight.detach().requires_grad_(True)
    z = torch.nn.functional.linear(h, w).float()
    lp = torch.log_softmax(z, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    rtheta = ((lp * mask).view(N, T).sum(-1) - ref) * beta
    adv = rewards - rewards.view(-1, k).mean(-1).repeat_interleave(k)
    centered = rtheta - rtheta.view(-1, k).mean(-1).repeat_interleave(k)
    loss = (0.5 * (centered - adv) ** 2).sum() / (k - 1)
    loss.backward()
    return h.grad, w.grad


ms = median_ms(step, 5)
live = int(mask.sum().item())
tflops = 4 * 2 * live * H * V / (ms * 1e-3) / 1e12
peak = torch.cuda.max_memory_allocated() / 1e9
print(f"| PyTorch {torch.__version__} eager, linear + log_softmax + loss + backward, device tensors (peak {peak:.1f} GB) "
      f"| {ms:.3f} | {tflops:.1f} |")
