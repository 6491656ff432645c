"""Reads RESULTS-gpu.md as scripts/gpu-check.sh wrote it and prints, for each table, how many
times faster than each peer row (PyTorch, Liger-Kernel) our row is, from the medians in the same
run: gvpoFromLogits' fused step in the logits table, gvpoFromHidden's device time and whole call
in the head table.
  python3 bench/peers/gpu_ratios.py RESULTS-gpu.md"""
import sys

OURS = ("| gvpoFromLogits forward + loss + gradient", "| gvpoFromHidden, device time", "| gvpoFromHidden, whole call")
PEERS = ("| PyTorch", "| Liger-Kernel")


def ms_of(row):
    try:
        return float(row.split("|")[2])
    except (IndexError, ValueError):
        return None


tables, current = [], []
for line in open(sys.argv[1]):
    if line.startswith("|"):
        current.append(line.strip())
    elif current:
        tables.append(current)
        current = []
if current:
    tables.append(current)

out = []
for rows in tables:
    ours = [(r.split("|")[1].strip(), ms_of(r)) for r in rows if r.startswith(OURS)]
    peers = [(r.split("|")[1].strip(), ms_of(r)) for r in rows if r.startswith(PEERS)]
    for name, ms in ours:
        for peer, pms in peers:
            if ms and pms:
                out.append(f"- {name}: {pms / ms:.2f}x the speed of {peer} ({ms:.3f} against {pms:.3f} ms)")
if out:
    print("\n## Ratios (same run)\n")
    print("\n".join(out))
