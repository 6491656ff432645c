// GPU figures (no Node): the fused forward + loss + gradient at N*T = 16384, V = 151936,
// bfloat16 logits, against three passes at the device-to-device copy bandwidth measured in the
// same run (bench/NOTES.md); then the fused LM head (bench_head). Napkin math: the fused step reads the bf16 logits
// twice and writes a float32 gradient once: 2*R*V*2 + R*V*4 bytes. Prints markdown tables (RESULTS-gpu.md).
//   gvpo_bench_cuda [logits|head] [N T V]   (both tables when neither is named)
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../kernels.h"

using namespace gvpo;

#define CUDA_OK(call)                                                                                 \
  do {                                                                                                \
    cudaError_t e_ = (cudaError_t)(call);                                                             \
    if (e_ != cudaSuccess) {                                                                          \
      std::printf("CUDA error %s at %s:%d: %s\n", #call, __FILE__, __LINE__, cudaGetErrorString(e_)); \
      return 1;                                                                                       \
    }                                                                                                 \
  } while (0)

__global__ void fill_f32(float* x, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const uint32_t h = (uint32_t)(i * 2654435761u) ^ (uint32_t)(i >> 11) ^ seed;
    x[i] = ((h & 0xffff) / 65536.0f - 0.5f) * 0.1f;
  }
}

__global__ void fill_kernel(__nv_bfloat16* z, int32_t* y, float* m, int64_t n, int64_t R, int64_t V, int64_t T) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    uint32_t h = (uint32_t)(i * 2654435761u) ^ (uint32_t)(i >> 13);  // cheap hash: not zeros
    z[i] = __float2bfloat16(((h & 0xffff) / 65536.0f - 0.5f) * 8.0f);
    if (i < R) {
      y[i] = (int32_t)(h % V);
      m[i] = (i % T) >= T / 4 ? 1.0f : 0.0f;
    }
  }
}

static float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The fused LM head over host arrays at N*T = 4096 (k = 8, a quarter of each sequence masked as
// prompt), H = 2048, V = 32768, bfloat16 hidden states and weight: the GEMM alone (float32
// SIMT tiles, gemm.cu) and the whole op, its device time split from the copies. Flops: four
// GEMM-sized passes of 2*R_live*H*V over the live rows.
static int bench_head(const char* name) {
  const int64_t N = 16, T = 256, H = 2048, V = 32768, R = N * T, k = 8;
  std::vector<uint16_t> hid((size_t)(R * H)), w((size_t)(V * H));
  for (size_t i = 0; i < hid.size(); i++)
    hid[i] = (uint16_t)(0x3c00 + (i * 2654435761u >> 20) % 512) ^ (i & 1 ? 0x8000 : 0);
  for (size_t i = 0; i < w.size(); i++) w[i] = (uint16_t)(0x3a00 + (i * 40503u >> 7) % 512) ^ (i & 2 ? 0x8000 : 0);
  std::vector<int32_t> y(R), off(N / k + 1);
  std::vector<float> mask(R);
  std::vector<double> rew(N), ref(N);
  int64_t live = 0;
  for (int64_t r = 0; r < R; r++) y[r] = (int32_t)(r * 7919 % V), mask[r] = r % T >= T / 4, live += r % T >= T / 4;
  for (int64_t g = 0; g <= N / k; g++) off[g] = (int32_t)(g * k);
  for (int64_t n = 0; n < N; n++) rew[n] = (double)(n % 3 == 0), ref[n] = -1000.0 - n;
  GvpoHiddenBatch in{{DType::bf16, y.data(), mask.data(), nullptr, ref.data(), rew.data(), off.data(), N / k, N, T, V,
                      1.0f, 0.1, true},
                     hid.data(),
                     w.data(),
                     H};
  std::vector<float> gh((size_t)(R * H)), gw((size_t)(V * H)), lp(R), lz(R);
  std::vector<double> S(N), Sq(N), gs(N), c(N);
  GvpoFromHiddenOut out{{lp.data(), lz.data(), S.data(), Sq.data(), gs.data(), c.data(), 0}, gh.data(), gw.data()};
  char err[512] = {0};
  std::vector<float> total, kernel;
  LossAndTerms terms{};
  for (int i = 0; i < 6; i++) {
    CudaTimings t{};
    cudaEvent_t a, b;
    CUDA_OK(cudaEventCreate(&a));
    CUDA_OK(cudaEventCreate(&b));
    CUDA_OK(cudaEventRecord(a));
    if (gvpo_from_hidden_cuda_host(out, &terms, &t, in, err, sizeof(err))) {
      std::printf("gvpoFromHidden (cuda) failed: %s\n", err);
      return 1;
    }
    CUDA_OK(cudaEventRecord(b));
    CUDA_OK(cudaEventSynchronize(b));
    float ms;
    cudaEventElapsedTime(&ms, a, b);
    if (i > 0) total.push_back(ms), kernel.push_back((float)t.kernel_ms);  // the first run warms up
  }
  // The GEMM alone, float32 operands: the logits of 4096 rows (4096 x 32768 x 2048).
  float *da, *db, *dc;
  CUDA_OK(cudaMalloc(&da, (size_t)(R * H) * 4));
  CUDA_OK(cudaMalloc(&db, (size_t)(V * H) * 4));
  CUDA_OK(cudaMalloc(&dc, (size_t)(R * V) * 4));
  fill_f32<<<4096, 256>>>(da, R * H, 1u);  // not zeros: they can run faster than real data
  fill_f32<<<4096, 256>>>(db, V * H, 7u);
  CUDA_OK(cudaGetLastError());
  cudaEvent_t a, b;
  CUDA_OK(cudaEventCreate(&a));
  CUDA_OK(cudaEventCreate(&b));
  std::vector<float> gm;
  for (int i = 0; i < 6; i++) {
    cudaEventRecord(a);
    CUDA_OK(gemm_cuda(dc, V, da, DType::f32, H, 1, db, DType::f32, 1, H, R, V, H, false, nullptr));
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms;
    cudaEventElapsedTime(&ms, a, b);
    if (i > 0) gm.push_back(ms);
  }
  cudaFree(da), cudaFree(db), cudaFree(dc);
  const double head_flop = 4.0 * 2.0 * live * H * V, gemm_flop = 2.0 * R * H * V;
  std::printf(
      "\n## Fused LM head (`gvpoFromHidden`), device: %s\n\nN*T = %lld (%lld live rows), H = %lld, V = %lld, bfloat16 "
      "hidden and weight, host arrays; medians of 5 runs after a warm-up. Loss %.6g.\n\n",
      name, (long long)R, (long long)live, (long long)H, (long long)V, terms.loss);
  std::printf("| what | median ms | TFLOP/s |\n| --- | --- | --- |\n");
  std::printf("| gemm_cuda alone, float32, %lld x %lld x %lld | %.3f | %.1f |\n", (long long)R, (long long)V,
              (long long)H, median(gm), gemm_flop / (median(gm) * 1e-3) / 1e12);
  std::printf("| gvpoFromHidden, device time (4 GEMM passes + log-softmax) | %.3f | %.1f |\n", median(kernel),
              head_flop / (median(kernel) * 1e-3) / 1e12);
  std::printf("| gvpoFromHidden, whole call with copies | %.3f | %.1f |\n", median(total),
              head_flop / (median(total) * 1e-3) / 1e12);
  return 0;
}

static int bench_logits(const char* name, int64_t N, int64_t T, int64_t V) {
  const int64_t R = N * T, k = 8, G = N / k, n = R * V;
  const size_t zb = (size_t)n * 2, gb = (size_t)n * 4;
  __nv_bfloat16* z;
  float *grad, *mask, *lp, *lz, *rm, *rl;
  int32_t *y, *off;
  double *lp64, *g, *seq, *gs, *res, *ref, *rew, *terms;
  CUDA_OK(cudaMalloc(&z, zb));
  CUDA_OK(cudaMalloc(&grad, gb));
  CUDA_OK(cudaMalloc(&y, R * 4));
  CUDA_OK(cudaMalloc(&mask, R * 4));
  CUDA_OK(cudaMalloc(&lp, R * 4));
  CUDA_OK(cudaMalloc(&lz, R * 4));
  CUDA_OK(cudaMalloc(&rm, R * 4));
  CUDA_OK(cudaMalloc(&rl, R * 4));
  CUDA_OK(cudaMalloc(&lp64, R * 8));
  CUDA_OK(cudaMalloc(&g, R * 8));
  CUDA_OK(cudaMalloc(&seq, N * 8));
  CUDA_OK(cudaMalloc(&gs, N * 8));
  CUDA_OK(cudaMalloc(&res, N * 8));
  CUDA_OK(cudaMalloc(&ref, N * 8));
  CUDA_OK(cudaMalloc(&rew, N * 8));
  CUDA_OK(cudaMalloc(&terms, 40));
  CUDA_OK(cudaMalloc(&off, (G + 1) * 4));
  fill_kernel<<<4096, 256>>>(z, y, mask, n, R, V, T);
  CUDA_OK(cudaGetLastError());
  std::vector<int32_t> hoff(G + 1);
  std::vector<double> hr(N), hq(N);
  for (int64_t i = 0; i <= G; i++) hoff[i] = (int32_t)(i * k);
  for (int64_t i = 0; i < N; i++) hr[i] = (double)(i % 3 == 0), hq[i] = -1000.0 - i;
  CUDA_OK(cudaMemcpy(off, hoff.data(), (G + 1) * 4, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(rew, hr.data(), N * 8, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(ref, hq.data(), N * 8, cudaMemcpyHostToDevice));

  cudaEvent_t a, b;
  CUDA_OK(cudaEventCreate(&a));
  CUDA_OK(cudaEventCreate(&b));
  auto time_it = [&](auto fn, int reps) {
    std::vector<float> t;
    fn();
    for (int i = 0; i < reps; i++) {
      cudaEventRecord(a);
      fn();
      cudaEventRecord(b);
      cudaEventSynchronize(b);
      float ms;
      cudaEventElapsedTime(&ms, a, b);
      t.push_back(ms);
    }
    return median(t);
  };
  // roofline: device-to-device copy of the gradient-sized buffer into itself's twin, bytes read + written
  float copy_ms = time_it([&] { cudaMemcpyAsync(grad, z, zb, cudaMemcpyDeviceToDevice); }, 20);
  double copy_bw = 2.0 * zb / (copy_ms * 1e-3);
  float fwd_ms = time_it(
      [&] { token_logprobs_forward_cuda(lp, lz, lp64, rm, rl, z, DType::bf16, y, mask, R, V, 1.0f, nullptr); }, 20);
  float step_ms = time_it(
      [&] {
        token_logprobs_forward_cuda(lp, lz, lp64, rm, rl, z, DType::bf16, y, mask, R, V, 1.0f, nullptr);
        gvpo_loss_cuda(seq, gs, res, g, terms, lp64, mask, ref, rew, off, G, N, T, 0.1, true, nullptr);
        token_logprobs_backward_cuda(grad, z, DType::bf16, y, mask, rm, rl, g, R, V, 1.0f, nullptr);
      },
      20);
  // the backward alone, from the forward's split and weights
  float bwd_ms =
      time_it([&] { token_logprobs_backward_cuda(grad, z, DType::bf16, y, mask, rm, rl, g, R, V, 1.0f, nullptr); }, 20);
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaDeviceSynchronize());
  const double step_bytes = 2.0 * zb + gb, floor_ms = step_bytes / copy_bw * 1e3;
  const double fwd_floor_ms = zb / copy_bw * 1e3;
  std::printf(
      "# gvpo CUDA figures\n\nDevice: %s. N*T = %lld (N = %lld, T = %lld, k = %lld), V = %lld, bfloat16 logits (%.2f "
      "GB). "
      "Medians of 20 timed runs (CUDA events) after a warm-up; one run of `gvpo_bench_cuda`.\n\n",
      name, (long long)R, (long long)N, (long long)T, (long long)k, (long long)V, zb / 1e9);
  std::printf("Device-to-device copy bandwidth, same run (bytes read + written): %.0f GB/s\n\n", copy_bw / 1e9);
  // The table's floor counts every row; the masked ones (a quarter of each sequence) are never read,
  // so the kernels' own traffic is lower: the live rows read twice, every row's gradient written.
  const int64_t live = N * (T - T / 4);
  const double own_bytes = 2.0 * live * V * 2 + gb, own_floor_ms = own_bytes / copy_bw * 1e3;
  std::printf(
      "The kernels skip the masked rows (%lld of %lld live): %.2f GB moved, floor %.3f ms, the step at %.0f%% of "
      "it.\n\n",
      (long long)live, (long long)R, own_bytes / 1e9, own_floor_ms, 100 * own_floor_ms / step_ms);
  std::printf(
      "| kernel | median ms | bytes moved (GB) | achieved GB/s | floor ms | of floor |\n| --- | --- | --- | --- | --- "
      "| --- |\n");
  std::printf("| tokenLogprobs forward | %.3f | %.2f | %.0f | %.3f | %.0f%% |\n", fwd_ms, zb / 1e9,
              zb / (fwd_ms * 1e-3) / 1e9, fwd_floor_ms, 100 * fwd_floor_ms / fwd_ms);
  std::printf("| tokenLogprobs backward (read + write) | %.3f | %.2f | %.0f | %.3f | %.0f%% |\n", bwd_ms,
              (zb + gb) / 1e9, (zb + gb) / (bwd_ms * 1e-3) / 1e9, (zb + gb) / copy_bw * 1e3,
              100 * (zb + gb) / copy_bw * 1e3 / bwd_ms);
  std::printf("| gvpoFromLogits forward + loss + gradient | %.3f | %.2f | %.0f | %.3f | %.0f%% |\n", step_ms,
              step_bytes / 1e9, step_bytes / (step_ms * 1e-3) / 1e9, floor_ms, 100 * floor_ms / step_ms);
  for (void* p : {(void*)z, (void*)grad, (void*)y, (void*)mask, (void*)lp, (void*)lz, (void*)rm, (void*)rl, (void*)lp64,
                  (void*)g, (void*)seq, (void*)gs, (void*)res, (void*)ref, (void*)rew, (void*)terms, (void*)off})
    cudaFree(p);
  return 0;
}

int main(int argc, char** argv) {
  const bool named = argc > 1 && (!std::strcmp(argv[1], "logits") || !std::strcmp(argv[1], "head"));
  const bool logits = !named || !std::strcmp(argv[1], "logits"), head = !named || !std::strcmp(argv[1], "head");
  const int first = named ? 2 : 1;
  const int64_t N = argc > first + 2 ? atoll(argv[first]) : 64, T = argc > first + 2 ? atoll(argv[first + 1]) : 256,
                V = argc > first + 2 ? atoll(argv[first + 2]) : 151936;
  int count = 0;
  char name[256];
  int err = cuda_device_info(&count, name, sizeof(name));
  if (err || count == 0) {
    std::printf("no CUDA device (%s): nothing measured\n", err ? name : "none found");
    return 0;
  }
  if (logits && bench_logits(name, N, T, V)) return 1;
  return head ? bench_head(name) : 0;
}
