"""Timing on the GPU for the PyTorch peers: CUDA events around each call, after one warm-up."""
import torch


def median_ms(step, reps, before=None):
    """The median over `reps` timed calls of step(), in milliseconds; peak memory counted from the
    first timed call. before(), when given, runs ahead of each call outside the timed region (to
    restore inputs a call overwrites)."""
    step()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(reps):
        if before:
            before()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        step()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]
