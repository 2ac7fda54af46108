// Small-batch fp32 GEMM for the CPU decode step: y[M, N] = x[M, K] @ W[N, K]^T (+ bias), with W
// prepacked once into panels of 16 output columns, k-major: panel p holds W[16p .. 16p+15, k] for
// k = 0 .. K-1 as K rows of 16 floats (the last panel zero-padded). A decode step has a few to a
// few dozen rows, so every weight is used a handful of times and the step is a stream over the
// weights: the panel layout makes that stream one contiguous read per panel (the hardware
// prefetcher runs ahead of it), and the register tile holds up to 16 rows' accumulators for one
// panel (AVX-512: 16 rows x 1 vector; AVX2: 6 rows x 2 vectors), so each weight is read from
// memory once per step, not once per row. Panels are split between threads.
//
// fp32 throughout, each output a chain of fused multiply-adds in k order (built with the same
// -ffast-math as the attention kernel; no reduction here for it to reorder): another summation
// order than F.linear's, which the tests hold it to within 1e-4, and to the same argmax logits.
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace {
constexpr int64_t kNR = 16;  // output columns per panel

#if defined(WB_GEMM_TILES_AVX512) || (defined(__AVX512F__) && !defined(WB_GEMM_TILES_AVX2))
// (the WB_GEMM_TILES_* switches pick a tile shape on any CPU: GCC's vector types run wider than
// the hardware as several registers, so the other shapes' arithmetic can be checked anywhere)
constexpr int kVW = 16;
constexpr int kMR = 16;
#elif defined(WB_GEMM_TILES_AVX2) || defined(__AVX__)
constexpr int kVW = 8;
constexpr int kMR = 6;
#else
constexpr int kVW = 4;
constexpr int kMR = 4;
#endif
constexpr int kNV = kNR / kVW;  // vectors per panel row
typedef float vf __attribute__((vector_size(kVW * sizeof(float))));

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof(vf));
  return v;
}
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof(vf)); }

// rows [0, MR) of x against one panel; writes y[r, 0 .. ncols)
template <int MR>
void tile(const float* __restrict x, int64_t ldx, const float* __restrict panel, int64_t K,
          const float* __restrict bias, float* __restrict y, int64_t ldy, int64_t ncols) {
  vf acc[MR][kNV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) acc[r][v] = vf{} ;
  for (int64_t k = 0; k < K; ++k) {
    vf w[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) w[v] = load(panel + k * kNR + v * kVW);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const float xv = x[r * ldx + k];
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) acc[r][v] += xv * w[v];
    }
  }
  float buf[kNR];
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) {
      vf a = acc[r][v];
      if (bias) a += load(bias + v * kVW);
      if (ncols == kNR) store(y + r * ldy + v * kVW, a);
      else store(buf + v * kVW, a);
    }
    if (ncols != kNR) std::memcpy(y + r * ldy, buf, ncols * sizeof(float));
  }
}

using TileFn = void (*)(const float*, int64_t, const float*, int64_t, const float*, float*, int64_t, int64_t);

template <int R>
struct Tiles {
  static void fill(TileFn* t) {
    t[R] = tile<R>;
    Tiles<R - 1>::fill(t);
  }
};
template <>
struct Tiles<0> {
  static void fill(TileFn*) {}
};

struct Table {
  TileFn fn[kMR + 1];
  Table() { Tiles<kMR>::fill(fn); }
};
const Table kTiles;
}  // namespace

extern "C" int wb_gemm_panel_width() { return static_cast<int>(kNR); }
extern "C" int wb_gemm_tile_rows() { return kMR; }

// out: ceil(N / 16) * K * 16 floats
extern "C" void wb_gemm_pack_f32(const float* __restrict w, int64_t N, int64_t K, float* __restrict out) {
  const int64_t panels = (N + kNR - 1) / kNR;
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t c = 0; c < kNR; ++c) {
        const int64_t n = p * kNR + c;
        out[(p * K + k) * kNR + c] = n < N ? w[n * K + k] : 0.0f;
      }
}

// bias may be null; padded_bias (ceil(N/16)*16 floats, or null) is what the tiles read
extern "C" int wb_gemm_f32(const float* __restrict x, int64_t M, int64_t K, int64_t ldx, const float* __restrict wp,
                           int64_t N, const float* __restrict padded_bias, float* __restrict y, int64_t ldy,
                           int num_threads) {
  if (M <= 0 || N <= 0 || K <= 0 || ldx < K || ldy < N) return 1;
  const int64_t panels = (N + kNR - 1) / kNR;
  // enough panels per thread to be worth waking them
#pragma omp parallel for schedule(static) num_threads(num_threads) if (panels >= 2 * num_threads)
  for (int64_t p = 0; p < panels; ++p) {
    const float* panel = wp + p * K * kNR;
    const int64_t ncols = std::min(kNR, N - p * kNR);
    const float* b = padded_bias ? padded_bias + p * kNR : nullptr;
    for (int64_t m = 0; m < M; m += kMR) {
      const int64_t rows = std::min<int64_t>(kMR, M - m);
      kTiles.fn[rows](x + m * ldx, ldx, panel, K, b, y + m * ldy + p * kNR, ldy, ncols);
    }
  }
  return 0;
}
