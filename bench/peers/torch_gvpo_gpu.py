"""PyTorch eager on the GPU, same sizes as native/tests/bench_cuda.cu (N*T = 16384, V = 151936,
bfloat16 logits): log_softmax, gather, the GVPO loss as the official recipe writes it, backward.
Appends a markdown row to RESULTS-gpu.md (scripts/gpu-check.sh)."""
import torch

from gpu_timing import median_ms

N, T, V, k, beta = 64, 256, 151936, 8, 0.1
dev = "cuda"
g = torch.Generator(device=dev).manual_seed(0)
logits = ((torch.rand(N, T, V, device=dev, generator=g) - 0.5) * 8).to(torch.bfloat16)
targets = torch.randint(0, V, (N, T), device=dev, generator=g)
mask = (torch.arange(T, device=dev) >= T // 4).float().expand(N, T)
ref = -1000.0 - torch.arange(N, device=dev, dtype=torch.float32)
rewards = (torch.arange(N, device=dev) % 3 == 0).float()


def step():
    z = logits.detach().requires_grad_(True)
    lp = torch.log_softmax(z.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    rtheta = ((lp * mask).sum(-1) - ref) * beta
    adv = rewards - rewards.view(-1, k).mean(-1).repeat_interleave(k)
    centered = rtheta - rtheta.view(-1, k).mean(-1).repeat_interleave(k)
    loss = (0.5 * (centered - adv) ** 2).sum() / (k - 1)
    loss.backward()
    return z.grad


ms = median_ms(step, 10)
peak = torch.cuda.max_memory_allocated() / 1e9
print(f"| PyTorch {torch.__version__} eager (same GPU, same sizes) | {ms:.3f} | | | | peak {peak:.1f} GB |")
