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
// One work item is a (row, KV head) pair: the G query heads of the group walk the context
// together, so every key and value is read once for all of them. Online softmax (FlashAttention's
// running max and sum), one KV block at a time. Decode attention is bound by memory, and a KV
// block is one 4 KiB page (16 tokens x 64 dims x fp32) that the hardware prefetcher will not run
// into from the previous one (the blocks are scattered): the next block's keys and values are
// prefetched while this one is computed. The common head sizes and group sizes are compile-time
// constants, so the query heads and the accumulators stay in registers. Built with -ffast-math for
// vectorised exp and reductions, so no infinities are used anywhere.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {
constexpr float kNegBig = -1e30f;
constexpr int64_t kMaxBlock = 256;
constexpr int64_t kLine = 64;  // bytes per cache line

struct Args {
  const float* q;
  const float* k_cache;
  const float* v_cache;
  const int64_t* tables;
  const int64_t* row_seq;
  const int64_t* row_ctx;
  float* out;
  int64_t H, KVH, D, BS, W, q_stride, head_stride;
  float scale;
};

inline void prefetch_block(const float* p, int64_t bytes) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t o = 0; o < bytes; o += kLine) __builtin_prefetch(c + o, 0, 3);
}

// One (row, KV head) item. kD/kG > 0: compile-time head size and group size; 0: read from a.
// s: scratch of G * kMaxBlock floats; acc: G * D; qs: G * D (used when sizes are runtime).
template <int kD, int kG>
void attend(const Args& a, int64_t t, int64_t kh, float* s, float* acc_rt, float* qs_rt) {
  const int64_t D = kD ? kD : a.D;
  const int64_t G = kG ? kG : a.H / a.KVH;
  const int64_t BS = a.BS;
  const int64_t ctx = a.row_ctx[t];
  const int64_t* table = a.tables + a.row_seq[t] * a.W;
  const float* qh = a.q + t * a.q_stride + kh * G * D;
  const float* kbase = a.k_cache + kh * a.head_stride;
  const float* vbase = a.v_cache + kh * a.head_stride;
  const int64_t block_bytes = BS * D * static_cast<int64_t>(sizeof(float));

  // fixed sizes: stack arrays the compiler can keep in registers; runtime sizes: the scratch
  alignas(64) float qs_fixed[kD && kG ? kD * kG : 1];
  alignas(64) float acc_fixed[kD && kG ? kD * kG : 1];
  float* qs = (kD && kG) ? qs_fixed : qs_rt;
  float* acc = (kD && kG) ? acc_fixed : acc_rt;
  float m[kG ? kG : 64], l[kG ? kG : 64];  // runtime G is checked <= 64 by the caller

  for (int64_t i = 0; i < G * D; ++i) qs[i] = qh[i] * a.scale, acc[i] = 0.0f;
  for (int64_t g = 0; g < G; ++g) m[g] = kNegBig, l[g] = 0.0f;

  const int64_t nblocks = (ctx + BS - 1) / BS;
  prefetch_block(kbase + table[0] * BS * D, block_bytes);
  prefetch_block(vbase + table[0] * BS * D, block_bytes);
  for (int64_t b = 0; b < nblocks; ++b) {
    if (b + 1 < nblocks) {
      prefetch_block(kbase + table[b + 1] * BS * D, block_bytes);
      prefetch_block(vbase + table[b + 1] * BS * D, block_bytes);
    }
    const int64_t n = std::min(BS, ctx - b * BS);
    const float* kb = kbase + table[b] * BS * D;
    const float* vb = vbase + table[b] * BS * D;
    for (int64_t j = 0; j < n; ++j) {  // scores: each key read once for the whole group
      const float* kj = kb + j * D;
      for (int64_t g = 0; g < G; ++g) {
        const float* qg = qs + g * D;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t d = 0; d < D; ++d) dot += qg[d] * kj[d];
        s[g * kMaxBlock + j] = dot;
      }
    }
    for (int64_t g = 0; g < G; ++g) {  // online softmax update of each head
      float* sg = s + g * kMaxBlock;
      float bmax = kNegBig;
      for (int64_t j = 0; j < n; ++j) bmax = std::max(bmax, sg[j]);
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
      float* ag = acc + g * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) ag[d] *= corr;
    }
    for (int64_t j = 0; j < n; ++j) {  // values: each read once for the whole group
      const float* vj = vb + j * D;
      for (int64_t g = 0; g < G; ++g) {
        const float p = s[g * kMaxBlock + j];
        float* ag = acc + g * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) ag[d] += p * vj[d];
      }
    }
  }
  float* oh = a.out + (t * a.H + kh * G) * D;
  for (int64_t g = 0; g < G; ++g) {
    const float inv = 1.0f / l[g];
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) oh[g * D + d] = acc[g * D + d] * inv;
  }
}

using AttendFn = void (*)(const Args&, int64_t, int64_t, float*, float*, float*);

template <int kD>
AttendFn pick_group(int64_t G) {
  switch (G) {
    case 1: return attend<kD, 1>;
    case 2: return attend<kD, 2>;
    case 3: return attend<kD, 3>;
    case 4: return attend<kD, 4>;
    case 5: return attend<kD, 5>;
    case 6: return attend<kD, 6>;
    case 7: return attend<kD, 7>;
    case 8: return attend<kD, 8>;
    default: return attend<0, 0>;
  }
}

AttendFn pick(int64_t D, int64_t G) {
  if (D == 64) return pick_group<64>(G);
  if (D == 128) return pick_group<128>(G);
  return attend<0, 0>;
}
}  // namespace

extern "C" int wb_paged_attention_f32(const float* __restrict q, const float* __restrict k_cache,
                                      const float* __restrict v_cache, const int64_t* __restrict tables,
                                      const int64_t* __restrict row_seq, const int64_t* __restrict row_ctx,
                                      float* __restrict out, int64_t T, int64_t H, int64_t KVH, int64_t D,
                                      int64_t NB, int64_t BS, int64_t W, int64_t q_stride, float scale,
                                      int num_threads) {
  if (KVH <= 0 || H % KVH != 0 || H / KVH > 64 || BS > kMaxBlock || BS <= 0 || D <= 0) return 1;
  for (int64_t t = 0; t < T; ++t) {  // bounds: a bad table must not read outside the cache
    const int64_t ctx = row_ctx[t];
    if (ctx > W * BS) return 2;
    if (ctx <= 0) continue;
    const int64_t* table = tables + row_seq[t] * W;
    for (int64_t b = 0; b * BS < ctx; ++b)
      if (table[b] < 0 || table[b] >= NB) return 3;
  }
  const int64_t G = H / KVH;
  const Args a{q, k_cache, v_cache, tables, row_seq, row_ctx, out, H, KVH, D, BS, W, q_stride, NB * BS * D, scale};
  const AttendFn fn = pick(D, G);

  // a handful of rows (batch-1 decode) is cheaper on one thread than waking the others
#pragma omp parallel num_threads(num_threads) if (T * KVH >= 4 * num_threads)
  {
    thread_local std::vector<float> s, acc, qs;
    s.resize(G * kMaxBlock), acc.resize(G * D), qs.resize(G * D);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < T * KVH; ++item) {
      const int64_t t = item / KVH, kh = item % KVH;
      if (row_ctx[t] > 0) fn(a, t, kh, s.data(), acc.data(), qs.data());
    }
  }
  return 0;
}
