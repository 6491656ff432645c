#!/usr/bin/env python3
"""PyTorch float64 autograd fixtures for gvpoFromHidden (test/gvpoFromHidden.test.ts).

The loss is written from the definition (logits = hidden @ weight.T, log_softmax, gather, masked
sum, group-centred residuals, sum over groups of c^2 / (2 (k-1)), mean over groups with k >= 2),
independently of the package; torch.autograd gives dL/dhidden and dL/dweight. Inputs are drawn
in float32 (bfloat16 cases: rounded to bfloat16) so that the package sees exactly the values
used here. Run: /usr/bin/python3 scripts/make-fixtures-hidden.py  (Debian's python3-torch)
"""
import json
import os

import torch


def gvpo_loss(hidden, weight, targets, mask, offsets, rewards, beta, tau, ref_tok, ref_seq):
    z = hidden @ weight.T / tau  # (N*T, V)
    lp = torch.log_softmax(z, dim=-1).gather(1, targets.clamp(min=0).unsqueeze(1)).squeeze(1)
    lp = torch.where(mask != 0, lp, torch.zeros_like(lp))
    N = rewards.shape[0]
    S = (mask * lp).view(N, -1).sum(1)
    if ref_tok is not None:
        Sref = (mask * ref_tok).view(N, -1).sum(1)
    elif ref_seq is not None:
        Sref = ref_seq
    else:
        Sref = S.detach()
    r = beta * (S - Sref)
    loss = torch.zeros((), dtype=torch.float64)
    live = 0
    for g in range(len(offsets) - 1):
        b, e = offsets[g], offsets[g + 1]
        k = e - b
        if k < 2:
            continue
        live += 1
        c = (r[b:e] - r[b:e].mean()) - (rewards[b:e] - rewards[b:e].mean())
        loss = loss + (c * c).sum() / (2 * (k - 1))
    return loss / max(live, 1), S


def case(seed, N, T, H, V, offsets, dtype, tau, ref, masked):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N * T, H, generator=g, dtype=torch.float32)
    weight = torch.randn(V, H, generator=g, dtype=torch.float32) * (1.5 / H ** 0.5)
    if dtype == 'bfloat16':
        hidden, weight = hidden.bfloat16().float(), weight.bfloat16().float()
    targets = torch.randint(0, V, (N * T,), generator=g, dtype=torch.int32)
    mask = torch.ones(N * T, dtype=torch.float64)
    if masked:
        mask[::3] = 0  # prompt-like holes; their targets may hold anything
        targets[::3] = -1
    rewards = torch.randn(N, generator=g, dtype=torch.float64)
    ref_tok = -torch.rand(N * T, generator=g, dtype=torch.float64) * 3 if ref == 'token' else None
    ref_seq = -torch.rand(N, generator=g, dtype=torch.float64) * 5 if ref == 'sequence' else None
    h64 = hidden.double().requires_grad_()
    w64 = weight.double().requires_grad_()
    loss, S = gvpo_loss(h64, w64, targets.long(), mask, offsets, rewards, 0.1, tau, ref_tok, ref_seq)
    loss.backward()

    def bits(t):  # bfloat16 bit patterns of exactly representable values
        return (t.contiguous().view(torch.int32) >> 16).tolist()

    out = {
        'name': f'N={N} T={T} H={H} V={V} {dtype} tau={tau} ref={ref} groups={offsets}',
        'sequences': N, 'tokens': T, 'hiddenSize': H, 'vocab': V, 'dtype': dtype,
        'temperature': tau, 'beta': 0.1, 'offsets': offsets,
        'targets': targets.tolist(), 'mask': mask.tolist(), 'rewards': rewards.tolist(),
        'loss': loss.item(), 'policyLogprobs': S.tolist(),
        'gradHidden': h64.grad.flatten().tolist(), 'gradWeight': w64.grad.flatten().tolist(),
    }
    if dtype == 'bfloat16':
        out['hiddenBits'], out['weightBits'] = bits(hidden.flatten()), bits(weight.flatten())
    else:
        out['hidden'], out['weight'] = hidden.flatten().tolist(), weight.flatten().tolist()
    if ref_tok is not None:
        out['referenceTokenLogprobs'] = ref_tok.tolist()
    if ref_seq is not None:
        out['referenceLogprobs'] = ref_seq.tolist()
    return out


def main():
    cases = [
        case(1, 4, 3, 17, 37, [0, 2, 4], 'float32', 1.0, 'token', True),
        case(2, 5, 1, 9, 65, [0, 1, 3, 5], 'float32', 0.7, 'sequence', False),
        case(3, 3, 2, 20, 1, [0, 3], 'float32', 1.0, None, False),
        case(4, 6, 2, 33, 50, [0, 4, 6], 'bfloat16', 1.3, 'token', True),
    ]
    path = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'gvpoFromHidden.json')
    with open(path, 'w') as f:
        json.dump({'generator': 'scripts/make-fixtures-hidden.py', 'torch': torch.__version__, 'cases': cases}, f)
    print(path, os.path.getsize(path), 'bytes')


if __name__ == '__main__':
    main()
