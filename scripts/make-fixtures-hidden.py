#!/usr/bin/env python3
"""PyTorch float64 autograd fixtures for the fused LM head: gvpoFromHidden
(test/gvpoFromHidden.test.ts) and tokenLogprobsFromHidden (test/tokenLogprobsFromHidden.test.ts).

The loss is written from the definition (logits = hidden @ weight.T, log_softmax, gather, masked
sum, group-centered residuals, sum over groups of c^2 / (2 (k-1)), mean over groups with k >= 2),
independently of the package; torch.autograd gives dL/dhidden and dL/dweight. Inputs are drawn
in float32 (bfloat16 cases: rounded to bfloat16) so that the package sees exactly the values
used here. For tokenLogprobsFromHidden the loss is sum over live rows of gl * l + gH * H with
random upstream gl, gH, l = log_softmax(z)[y] and H = -sum softmax(z) * log_softmax(z); autograd
gives its gradients, which are the op's backward for those upstream gradients.
Run: /usr/bin/python3 scripts/make-fixtures-hidden.py  (Debian's python3-torch)
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


def draw(g, R, H, V, dtype, tau):
    """hidden (R x H) and weight (V x H) in float32, rounded to dtype, and their bit patterns."""
    hidden = torch.randn(R, H, generator=g, dtype=torch.float32)
    # |z/tau| of order 10 at a small temperature, as at tau = 1
    weight = torch.randn(V, H, generator=g, dtype=torch.float32) * (1.5 / H ** 0.5) * min(1.0, 10 * tau)
    out = {}
    if dtype == 'float32':
        out['hidden'], out['weight'] = hidden.flatten().tolist(), weight.flatten().tolist()
        return hidden, weight, out
    half = torch.bfloat16 if dtype == 'bfloat16' else torch.float16
    hidden, weight = hidden.to(half), weight.to(half)
    out['hiddenBits'] = (hidden.flatten().view(torch.int16).int() & 0xffff).tolist()
    out['weightBits'] = (weight.flatten().view(torch.int16).int() & 0xffff).tolist()
    return hidden.float(), weight.float(), out


def head_case(seed, R, H, V, dtype, tau, masked, entropy_grad):
    g = torch.Generator().manual_seed(seed)
    hidden, weight, out = draw(g, R, H, V, dtype, tau)
    targets = torch.randint(0, V, (R,), generator=g, dtype=torch.int32)
    live = torch.ones(R, dtype=torch.bool)
    if masked:
        live[::3] = False  # masked rows: any target, any upstream
        targets[::3] = -1
    gl = torch.randn(R, generator=g, dtype=torch.float32).double()
    gh = torch.randn(R, generator=g, dtype=torch.float32).double() if entropy_grad else torch.zeros(R, dtype=torch.float64)
    h64 = hidden.double().requires_grad_()
    w64 = weight.double().requires_grad_()
    z = h64 @ w64.T / tau
    logp = torch.log_softmax(z, dim=-1)
    lp = logp.gather(1, targets.long().clamp(min=0).unsqueeze(1)).squeeze(1)
    ent = -(logp.exp() * logp).sum(-1)
    zero = torch.zeros(R, dtype=torch.float64)
    lp, ent, lz = torch.where(live, lp, zero), torch.where(live, ent, zero), torch.where(live, torch.logsumexp(z, -1), zero)
    loss = (torch.where(live, gl, zero) * lp + torch.where(live, gh, zero) * ent).sum()
    loss.backward()
    gl_out, gh_out = gl.tolist(), gh.tolist()
    for r in range(0, R, 3) if masked else []:  # upstream on masked rows: null (the test's NaN)
        gl_out[r] = gh_out[r] = None
    out.update({
        'name': f'rows={R} H={H} V={V} {dtype} tau={tau} masked={masked} gradEntropy={entropy_grad}',
        'rows': R, 'hiddenSize': H, 'vocab': V, 'dtype': dtype, 'temperature': tau,
        'targets': targets.tolist(), 'mask': live.double().tolist(),
        'gradTokenLogprobs': gl_out, 'gradEntropy': gh_out if entropy_grad else None,
        'logprobs': lp.tolist(), 'logZ': lz.tolist(), 'entropy': ent.tolist(),
        'gradHidden': h64.grad.flatten().tolist(), 'gradWeight': w64.grad.flatten().tolist(),
    })
    return out


def write(name, cases):
    path = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', name)
    with open(path, 'w') as f:
        json.dump({'generator': 'scripts/make-fixtures-hidden.py', 'torch': torch.__version__, 'cases': cases}, f,
                  allow_nan=False)
    print(path, os.path.getsize(path), 'bytes')


def main():
    cases = [
        case(1, 4, 3, 17, 37, [0, 2, 4], 'float32', 1.0, 'token', True),
        case(2, 5, 1, 9, 65, [0, 1, 3, 5], 'float32', 0.7, 'sequence', False),
        case(3, 3, 2, 20, 1, [0, 3], 'float32', 1.0, None, False),
        case(4, 6, 2, 33, 50, [0, 4, 6], 'bfloat16', 1.3, 'token', True),
    ]
    write('gvpoFromHidden.json', cases)
    write('tokenLogprobsFromHidden.json', [
        head_case(11, 7, 17, 37, 'float32', 1.0, True, True),
        head_case(12, 5, 9, 65, 'float32', 0.7, False, False),
        head_case(13, 3, 20, 1, 'float32', 1.0, False, True),
        head_case(14, 1, 5, 2, 'float32', 1.0, False, True),
        head_case(15, 6, 33, 50, 'bfloat16', 1.3, True, True),
        head_case(16, 6, 12, 129, 'float16', 0.9, True, True),
        head_case(17, 4, 8, 130, 'float32', 1e-3, False, True),
        head_case(18, 4, 8, 130, 'float32', 30.0, True, True),
    ])


if __name__ == '__main__':
    main()
