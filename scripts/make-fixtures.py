#!/usr/bin/env python3
"""Reference fixtures for test/fixtures.test.ts, from PyTorch float64 autograd of a plain
formulation of the GVPO loss (log_softmax, gather, group statistics, .backward()), independent of
the package's own code. Run with Debian's PyTorch (apt-get install python3-torch):

    /usr/bin/python3 scripts/make-fixtures.py

writes test/fixtures/torch-reference.json. The inputs are drawn with a fixed seed, so the file
only changes when the cases below do. 16-bit logits are stored as their bit patterns and the
reference is computed on the values those patterns decode to. Large arrays (logits, dL/dz) are
base64 of little-endian bytes: logits exactly, the float64 gradient rounded to float32 (a relative
error of 6e-8, far below any tolerance the test uses)."""
import base64
import json
import math
import os

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261122)


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def num(x):
    x = float(x)
    return x if math.isfinite(x) else str(x).replace("inf", "Infinity")


def encode(z32, dtype):
    """float32 values -> (stored array, float64 values the kernels see)."""
    t = torch.from_numpy(z32.astype(np.float32))
    if dtype == "float32":
        return z32.astype(np.float32), z32.astype(np.float64)
    half = t.to(torch.bfloat16 if dtype == "bfloat16" else torch.float16)
    bits = half.view(torch.int16).numpy().view(np.uint16)
    return bits, half.to(torch.float64).numpy()


def reference(z, y, m, tau, beta, rewards, offsets, ref_kind, ref, reduction):
    N, T, V = z.shape
    zt = torch.tensor(z, requires_grad=True)
    mt = torch.tensor(m)
    live = mt != 0
    ysafe = torch.where(live, torch.tensor(y, dtype=torch.int64), torch.zeros_like(mt, dtype=torch.int64))
    logp = torch.log_softmax(zt / tau, dim=-1)
    lt = torch.where(live, logp.gather(-1, ysafe[..., None])[..., 0], torch.zeros_like(mt))
    S = (mt * lt).sum(-1)
    S.retain_grad()
    if ref_kind == "token":
        Sref = (mt * torch.tensor(ref).reshape(N, T)).sum(-1)
    elif ref_kind == "sequence":
        Sref = torch.tensor(ref)
    else:
        Sref = S.detach()  # the current policy is the reference: a constant for the gradient
    R = torch.tensor(rewards)
    loss = torch.zeros(())
    terms = {k: torch.zeros(()) for k in ("advantage", "trustRegion", "variance", "constant")}
    residuals = torch.zeros(N)
    groups2 = 0
    for lo, hi in zip(offsets[:-1], offsets[1:]):
        k = hi - lo
        if k < 2:
            continue
        groups2 += 1
        s, q0, r0 = S[lo:hi], Sref[lo:hi], R[lo:hi]
        r = beta * (s - q0)
        c = (r - r.mean()) - (r0 - r0.mean())
        residuals[lo:hi] = c.detach()
        loss = loss + (c ** 2).sum() / 2 / (k - 1)
        a, p, q = (r0 - r0.mean()).detach(), (s - s.mean()).detach(), (q0 - q0.mean()).detach()
        terms["advantage"] += -beta / (k - 1) * (a * p).sum()
        terms["trustRegion"] += -beta ** 2 / (k - 1) * (p * q).sum()
        terms["variance"] += beta ** 2 / (2 * (k - 1)) * (p ** 2).sum()
        terms["constant"] += 1 / (2 * (k - 1)) * ((a + beta * q) ** 2).sum()
    scale = 1.0 / groups2 if reduction == "mean" and groups2 > 0 else 1.0
    loss = loss * scale
    if loss.requires_grad:  # no group of size >= 2: the loss is the constant 0
        loss.backward()
    gz = zt.grad if zt.grad is not None else torch.zeros_like(zt)
    gS = S.grad if S.grad is not None else torch.zeros(N)
    return {
        "tokenLogprobs": [num(x) for x in lt.detach().reshape(-1)],
        "logZ": [num(x) for x in torch.logsumexp(zt.detach() / tau, -1).reshape(-1)],
        "policyLogprobs": [num(x) for x in S.detach()],
        "referenceLogprobs": [num(x) for x in Sref.detach()],
        "loss": num(loss),
        "terms": {k: num(v * scale) for k, v in terms.items()},
        "residuals": [num(x) for x in residuals],
        "gradLogprobs": [num(x) for x in gS],
        "gradLogits": b64(gz.numpy().astype("<f4")),
    }


def case(name, N, T, V, *, dtype="float32", tau=1.0, beta=0.1, scale=3.0, offsets=None, ref="sequence",
         reduction="mean", mask=None, logits=None, targets=None):
    z32 = (logits if logits is not None else rng.normal(0, scale, (N, T, V))).astype(np.float32)
    stored, z = encode(z32, dtype)
    z = z.reshape(N, T, V)
    m = np.ones((N, T)) if mask is None else np.asarray(mask, dtype=np.float32).astype(np.float64).reshape(N, T)
    y = rng.integers(0, V, (N, T)) if targets is None else np.asarray(targets).reshape(N, T)
    # Targets of masked tokens may hold anything: give some of them values no index may take.
    bad = [-1, V, 2 ** 31 - 1, -(2 ** 31)]
    for i, (n, t) in enumerate(zip(*np.nonzero(m == 0))):
        if i % 2 == 0:
            y[n, t] = bad[i // 2 % 4]
    offsets = offsets or list(range(0, N + 1, 2 if N % 2 == 0 else N))
    rewards = rng.normal(0, 1, N)
    refv = None
    if ref == "token":
        refv = -np.abs(rng.normal(2, 1, N * T))
    elif ref == "sequence":
        refv = rng.normal(-10, 3, N)
    out = reference(z, y, m, tau, beta, rewards, offsets, ref, refv, reduction)
    inputs = {
        "name": name, "sequences": N, "tokens": T, "vocab": V, "dtype": dtype, "temperature": tau, "beta": beta,
        "reduction": reduction, "offsets": offsets, "rewards": rewards.tolist(),
        "logits": b64(stored.astype("<f4" if dtype == "float32" else "<u2")),
        "targets": y.reshape(-1).astype(np.int64).tolist(), "mask": m.reshape(-1).tolist(),
    }
    if ref == "token":
        inputs["referenceTokenLogprobs"] = refv.tolist()
    elif ref == "sequence":
        inputs["referenceLogprobs"] = refv.tolist()
    return {"inputs": inputs, "expected": out}


def special_rows(N, T, V, base):
    """-inf entries, the row maximum in the last element, and constant rows."""
    z = rng.normal(0, base, (N, T, V))
    z[0, 0, 1::3] = -np.inf
    z[0, -1, -1] = z[0, -1].max() + 5
    z[-1, 0, :] = 1.25
    return z


def cases():
    out = []
    add = out.append
    add(case("V=1, no reference (Sref = S)", 2, 3, 1, offsets=[0, 2], ref="none"))
    add(case("V=2, mask weights not 0/1, ragged groups with a size-1 group, Sref per token, sum", 4, 2, 2,
             mask=[0.5, 2, 0, 1.25, 1, 0, 3, 0.75], offsets=[0, 1, 4], ref="token", reduction="sum"))
    add(case("V=15 bfloat16, tau 2.7, beta 1e-3", 3, 2, 15, dtype="bfloat16", tau=2.7, beta=1e-3, offsets=[0, 2, 3]))
    add(case("V=17 float16 near its limits (65504, subnormals), beta 10", 2, 2, 17, dtype="float16", beta=10,
             logits=np.concatenate([rng.choice([65504, -65504, 6e-8, -6e-8, 3e-5, 60000], (2, 2, 8)),
                                    rng.normal(0, 2e4, (2, 2, 9))], -1)))
    add(case("T=1, V=17, Sref per sequence", 4, 1, 17, ref="sequence"))
    add(case("|z| near 80, tau 0.3, no reference", 2, 3, 33, tau=0.3, ref="none", logits=80 + rng.normal(0, 1, (2, 3, 33)) * np.sign(rng.normal(size=(2, 3, 33)))))
    add(case("|z| near 1e4, tau 1e-6", 2, 2, 17, tau=1e-6, logits=1e4 + rng.normal(0, 1e-3, (2, 2, 17)) * 1e4 / 1e4))
    add(case("|z| near 1e4, tau 2.7, beta 10", 2, 2, 17, tau=2.7, beta=10, logits=rng.choice([-1, 1], (2, 2, 17)) * (1e4 + rng.normal(0, 30, (2, 2, 17)))))
    add(case("tau 1e-6, |z| about 1", 2, 2, 15, tau=1e-6, scale=1.0, ref="token"))
    add(case("-inf entries, maximum in the last element, constant rows", 2, 3, 17, logits=special_rows(2, 3, 17, 3)))
    zt = rng.normal(0, 3, (2, 2, 4099))
    zt[0, 0, :2048] = -np.inf
    zt[1, 1, -1] = zt[1, 1].max() + 2
    yt = rng.integers(2048, 4099, (2, 2))  # the -inf row's target among its finite entries
    add(case("V=4099, a row -inf across its first 2048, maximum in the last element", 2, 2, 4099, logits=zt, offsets=[0, 2],
             mask=[1, 1, 1, 0.5], targets=yt, ref="token"))
    add(case("V=4099 bfloat16, large magnitudes, tau 2.7", 2, 1, 4099, dtype="bfloat16", tau=2.7,
             logits=rng.normal(0, 1, (2, 1, 4099)) * 10.0 ** rng.integers(0, 5, (2, 1, 4099))))
    add(case("bfloat16 subnormals and near-max", 2, 2, 17, dtype="bfloat16", tau=1,
             logits=np.concatenate([rng.choice([1e-40, -1e-40, 9e-39], (2, 2, 8)), rng.normal(0, 4, (2, 2, 9))], -1)))
    add(case("a fully masked sequence, groups of sizes 1, 2 and 2, Sref per sequence", 5, 3, 5,
             mask=[1, 1, 1, 0, 0, 0, 1, 0.5, 1, 1, 1, 0, 2, 1, 1], offsets=[0, 1, 3, 5], ref="sequence"))
    add(case("every group of size 1", 3, 2, 5, offsets=[0, 1, 2, 3]))
    add(case("float16 tau 1e-6, beta 1e-3, mean", 4, 2, 17, dtype="float16", tau=1e-6, beta=1e-3, offsets=[0, 3, 4], ref="token"))
    return out


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "test", "fixtures", "torch-reference.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = {"generator": "scripts/make-fixtures.py", "torch": torch.__version__, "cases": cases()}
    with open(path, "w") as f:
        json.dump(data, f, separators=(",", ":"))
    print(f"{path}: {len(data['cases'])} cases, {os.path.getsize(path)} bytes")
