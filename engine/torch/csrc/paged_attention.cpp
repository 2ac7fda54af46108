// Paged attention for the CPU: every query row reads its keys and values straight from the paged
// KV cache through its sequence's block table (no gather into a contiguous copy, no padding, no
// mask). One call per layer serves all decode rows and short chunks (speculative verify rows):
// each row has its own context length, which also makes a chunk causal.
//
// Layouts (fp32): q [T, H, D] with rows q_stride floats apart (a slice of the fused q/k
// output), out [T, H, D] contiguous; caches [KVH, NB, BS, D] (one layer);
// tables [S, W] block ids; row_seq [T] a row's table; row_ctx [T] tokens the row attends to
// (0: the row is not ours, leave it alone). Query heads h*G .. h*G+G-1 share KV head h (GQA).
//
// Online softmax (FlashAttention's running max and sum), one KV block at a time. Built with
// -ffast-math for vectorised exp and reductions, so no infinities are used anywhere.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {
constexpr float kNegBig = -1e30f;
constexpr int64_t kMaxBlock = 256;
}

extern "C" int wb_paged_attention_f32(const float* __restrict q, const float* __restrict k_cache,
                                      const float* __restrict v_cache, const int64_t* __restrict tables,
                                      const int64_t* __restrict row_seq, const int64_t* __restrict row_ctx,
                                      float* __restrict out, int64_t T, int64_t H, int64_t KVH, int64_t D,
                                      int64_t NB, int64_t BS, int64_t W, int64_t q_stride, float scale,
                                      int num_threads) {
  if (KVH <= 0 || H % KVH != 0 || BS > kMaxBlock || BS <= 0) return 1;
  for (int64_t t = 0; t < T; ++t) {  // bounds: a bad table must not read outside the cache
    const int64_t ctx = row_ctx[t];
    if (ctx > W * BS) return 2;
    if (ctx <= 0) continue;
    const int64_t* table = tables + row_seq[t] * W;
    for (int64_t b = 0; b * BS < ctx; ++b)
      if (table[b] < 0 || table[b] >= NB) return 3;
  }
  const int64_t G = H / KVH;
  const int64_t head_stride = NB * BS * D;

  // a handful of rows (batch-1 decode) is cheaper on one thread than waking the others
#pragma omp parallel num_threads(num_threads) if (T * KVH >= 4 * num_threads)
  {
    thread_local std::vector<float> acc, m, l, s;
    acc.resize(G * D), m.resize(G), l.resize(G), s.resize(G * kMaxBlock);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < T * KVH; ++item) {
      const int64_t t = item / KVH, kh = item % KVH;
      const int64_t ctx = row_ctx[t];
      if (ctx <= 0) continue;
      const int64_t* table = tables + row_seq[t] * W;
      const float* qh = q + t * q_stride + kh * G * D;
      std::fill(acc.begin(), acc.end(), 0.0f);
      std::fill(m.begin(), m.end(), kNegBig);
      std::fill(l.begin(), l.end(), 0.0f);
      for (int64_t b = 0; b * BS < ctx; ++b) {
        const int64_t n = std::min(BS, ctx - b * BS);
        const float* kb = k_cache + kh * head_stride + table[b] * BS * D;
        const float* vb = v_cache + kh * head_stride + table[b] * BS * D;
        for (int64_t g = 0; g < G; ++g) {
          const float* qg = qh + g * D;
          float* sg = s.data() + g * kMaxBlock;
          float bmax = kNegBig;
          for (int64_t j = 0; j < n; ++j) {
            const float* kj = kb + j * D;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int64_t d = 0; d < D; ++d) dot += qg[d] * kj[d];
            sg[j] = dot * scale;
            bmax = std::max(bmax, sg[j]);
          }
          const float mnew = std::max(m[g], bmax);
          const float corr = std::exp(m[g] - mnew);
          float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = 0; j < n; ++j) {
            sg[j] = std::exp(sg[j] - mnew);
            sum += sg[j];
          }
          l[g] = l[g] * corr + sum;
          m[g] = mnew;
          float* ag = acc.data() + g * D;
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) ag[d] *= corr;
          for (int64_t j = 0; j < n; ++j) {
            const float p = sg[j];
            const float* vj = vb + j * D;
#pragma omp simd
            for (int64_t d = 0; d < D; ++d) ag[d] += p * vj[d];
          }
        }
      }
      float* oh = out + (t * H + kh * G) * D;
      for (int64_t g = 0; g < G; ++g) {
        const float inv = 1.0f / l[g];
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) oh[g * D + d] = acc[g * D + d] * inv;
      }
    }
  }
  return 0;
}
