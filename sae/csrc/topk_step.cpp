// The loops of a TopK-family SAE step that torch has no cheap operator for (sae/native.py loads
// this file; sae/select.py, sae/batchtopk.py, sae/kernels.py and sae/trainer.py hold the torch
// versions they must agree with).
//
// topk_rows: the k largest entries of each row from one vectorised pass over it and a compare
// against a floor (candidates() below; AVX-512 written out for float rows where the CPU has it):
// a few more than k entries survive, and a selection among them picks the k. NaN counts as the
// largest value, as in torch.topk, so a NaN still reaches the loss and stops training.
// batch_topk: BatchTopK's batch-wide selection from the same per-row candidates.
// group_by_latent: the selected pairs grouped by latent (a stable counting sort).
// decode_residual: the decoder's forward and the squared error, one pass per token.
// sparse_backward, per_latent_sum: the decoder's side of the backward (one pass per latent) and
// the W_enc gradient. pair_dots: rows[r[j]] . table[c[j]] for every selected pair j (AuxK's path).
// project_rows: the decoder gradient's projection and the decoder renorm, one pass per row.
//
// All are deterministic: each output is computed by one thread in a fixed order.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <type_traits>
#include <atomic>
#include <limits>
#include <cmath>
#include <vector>
#include <cstdint>
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define STEP_AVX512 1
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define STEP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define STEP_CLONES
#endif

namespace {

bool use_avx512 = true;  // set_avx512(false) lets the tests compare both candidate passes

template <typename T>
inline bool beats(T a, T b) {  // a ranks above b, NaN above everything
  return (std::isnan(a) && !std::isnan(b)) || a > b;
}

template <typename T> struct Lanes;  // 64 bytes of T, and the compare mask of as many lanes
template <> struct Lanes<float> {
  typedef float V __attribute__((vector_size(64)));
  typedef int32_t M __attribute__((vector_size(64)));
};
template <> struct Lanes<double> {
  typedef double V __attribute__((vector_size(64)));
  typedef int64_t M __attribute__((vector_size(64)));
};

template <typename T>
inline bool reaches(const T* x, T floor) {  // any of the 64 bytes' entries >= floor
  typename Lanes<T>::V v;
  __builtin_memcpy(&v, x, 64);
  typename Lanes<T>::M m = v >= floor;
  uint64_t w[8];
  __builtin_memcpy(w, &m, 64);
  return (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0;
}

// Candidates for the row's top k: every entry >= a floor that k of them reach. The floor is the
// k-th largest of the maxima of G >= 2k strided chunks (chunk g = entries g, g + G, g + 2G, ...):
// k distinct entries are at least it, and it lets through only a few more than k. Returns the
// count, or -1 if the row holds a NaN.
template <typename T, int64_t G>
STEP_CLONES int64_t candidates(const T* __restrict__ row, int64_t n, int64_t k, T* __restrict__ cand_v,
                               int64_t* __restrict__ cand_i, T* floor_out = nullptr) {
  T m[G];
  int nan = 0;
  for (int64_t g = 0; g < G; ++g) m[g] = row[g];
  int64_t j = G;
  for (; j + G <= n; j += G)
    for (int64_t g = 0; g < G; ++g) {
      T x = row[j + g];
      m[g] = x > m[g] ? x : m[g];
      nan |= x != x;
    }
  for (; j < n; ++j) {
    T x = row[j];
    m[j % G] = x > m[j % G] ? x : m[j % G];
    nan |= x != x;
  }
  for (int64_t g = 0; g < G; ++g) nan |= m[g] != m[g];
  if (nan) return -1;
  std::nth_element(m, m + k - 1, m + G, [](T a, T b) { return a > b; });
  const T floor = m[k - 1];
  if (floor_out) *floor_out = floor;
  constexpr int64_t W = 64 / sizeof(T);
  int64_t c = 0;
  for (j = 0; j + W <= n; j += W) {
    if (!reaches(row + j, floor)) continue;
    for (int64_t l = 0; l < W; ++l) {  // branch-free: write always, advance when kept
      T x = row[j + l];
      cand_v[c] = x;
      cand_i[c] = j + l;
      c += x >= floor;
    }
  }
  for (; j < n; ++j) {
    T x = row[j];
    cand_v[c] = x;
    cand_i[c] = j;
    c += x >= floor;
  }
  return c;
}

// The k largest of c >= k candidates, moved to the front: all above the k-th largest value,
// then as many equal to it as are needed. NaN ranks above everything, as in torch.topk.
template <typename T>
void keep_largest(T* vals, int64_t* idx, int64_t c, int64_t k, T* tmp) {
  if (c == k) return;
  std::copy(vals, vals + c, tmp);
  std::nth_element(tmp, tmp + k - 1, tmp + c, [](T a, T b) { return beats(a, b); });
  const T v = tmp[k - 1];
  int64_t above = 0;
  for (int64_t j = 0; j < c; ++j) above += beats(vals[j], v);
  int64_t ties = k - above, o = 0;
  for (int64_t j = 0; j < c; ++j) {
    bool keep = beats(vals[j], v) || (!beats(v, vals[j]) && ties-- > 0);
    if (keep) {
      vals[o] = vals[j];
      idx[o++] = idx[j];
    }
  }
}

#ifdef STEP_AVX512
// The k-th largest of the G values held in Q = G / 16 registers (no NaN): the value with fewer
// than k above it and at least k at or above it, found by counting with compares, which is
// several times faster than std::nth_element at these sizes.
template <int64_t Q>
__attribute__((target("avx512f"))) float kth_of_registers(const __m512* m, const float* flat, int64_t k) {
  for (int64_t i = 0;; ++i) {
    const __m512 x = _mm512_set1_ps(flat[i]);
    int64_t gt = 0, ge = 0;
    for (int64_t q = 0; q < Q; ++q) {
      gt += __builtin_popcount((unsigned)_mm512_cmp_ps_mask(m[q], x, _CMP_GT_OQ));
      ge += __builtin_popcount((unsigned)_mm512_cmp_ps_mask(m[q], x, _CMP_GE_OQ));
    }
    if (gt < k && ge >= k) return flat[i];
  }
}

// candidates() for float rows with AVX-512 written out: the chunk maxima in G / 16 registers,
// NaNs collected in a mask, the floor by counting (kth_of_registers), then the positions of the
// entries >= floor, 16 at a time, packed by a compress into a register and stored whole without a
// branch (a compress straight to memory is slow on some cores). Same results as
// candidates<float, G>: the same floor, the same candidates in the same order.
template <int64_t G>
__attribute__((target("avx512f"))) int64_t candidates_avx512(const float* __restrict__ row, int64_t n, int64_t k,
                                                              float* __restrict__ cand_v, int64_t* __restrict__ cand_i,
                                                              float* floor_out, int32_t* __restrict__ pos) {
  constexpr int64_t Q = G / 16;
  __m512 m[Q];
  __mmask16 nan = 0;
  for (int64_t q = 0; q < Q; ++q) {
    m[q] = _mm512_loadu_ps(row + 16 * q);
    nan |= _mm512_cmp_ps_mask(m[q], m[q], _CMP_UNORD_Q);
  }
  int64_t j = G;
  for (; j + G <= n; j += G)
    for (int64_t q = 0; q < Q; ++q) {
      __m512 x = _mm512_loadu_ps(row + j + 16 * q);
      nan |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
      m[q] = _mm512_max_ps(x, m[q]);  // x > m ? x : m, as the generic loop
    }
  if (j < n) {  // the tail joins the chunks it belongs to, as in the generic loop
    alignas(64) float mx[G];
    for (int64_t q = 0; q < Q; ++q) _mm512_store_ps(mx + 16 * q, m[q]);
    for (; j < n; ++j) {
      float x = row[j];
      mx[j % G] = x > mx[j % G] ? x : mx[j % G];
      nan |= x != x;
    }
    for (int64_t q = 0; q < Q; ++q) m[q] = _mm512_load_ps(mx + 16 * q);
  }
  if (nan) return -1;
  alignas(64) float flat[G];
  for (int64_t q = 0; q < Q; ++q) _mm512_store_ps(flat + 16 * q, m[q]);
  const float floor = kth_of_registers<Q>(m, flat, k);
  if (floor_out) *floor_out = floor;
  const __m512 fv = _mm512_set1_ps(floor);
  __m512i col = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i step = _mm512_set1_epi32(16);
  int64_t c = 0;
  for (j = 0; j + 16 <= n; j += 16) {
    const __mmask16 keep = _mm512_cmp_ps_mask(_mm512_loadu_ps(row + j), fv, _CMP_GE_OQ);
    _mm512_storeu_si512(pos + c, _mm512_maskz_compress_epi32(keep, col));  // ends at c + 16 <= j + 16 <= n
    c += __builtin_popcount((unsigned)keep);
    col = _mm512_add_epi32(col, step);
  }
  for (; j < n; ++j) {
    pos[c] = (int32_t)j;
    c += row[j] >= floor;
  }
  for (int64_t t = 0; t < c; ++t) cand_v[t] = row[pos[t]], cand_i[t] = pos[t];
  return c;
}

// keep_largest() for c <= 128 float candidates without NaN, written to out: entry i is kept
// when fewer than k candidates beat it (so all of value >= v, the k-th largest), then those
// equal to v beyond the k needed are dropped from the end. The same entries in the same order
// as keep_largest.
__attribute__((target("avx512f"))) void keep_largest_avx512(const float* vals, const int64_t* idx, int64_t c,
                                                             int64_t k, float* out_v, int64_t* out_i) {
  __m512 r[8];
  __mmask16 valid[8];
  const int64_t Q = (c + 15) / 16;
  for (int64_t q = 0; q < Q; ++q) {
    const int64_t left = c - 16 * q;
    valid[q] = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
    r[q] = _mm512_maskz_loadu_ps(valid[q], vals + 16 * q);
  }
  float v = std::numeric_limits<float>::infinity();
  int64_t kept = 0;
  char in[128];
  for (int64_t i = 0; i < c; ++i) {
    const __m512 x = _mm512_set1_ps(vals[i]);
    int64_t gt = 0;
    for (int64_t q = 0; q < Q; ++q)
      gt += __builtin_popcount((unsigned)_mm512_mask_cmp_ps_mask(valid[q], r[q], x, _CMP_GT_OQ));
    in[i] = gt < k;
    if (in[i]) v = std::min(v, vals[i]), ++kept;
  }
  int64_t drop = kept - k, o = 0;  // ties at v beyond the k needed, dropped from the last
  for (int64_t i = c - 1; i >= 0 && drop > 0; --i)
    if (in[i] && vals[i] == v) in[i] = 0, --drop;
  for (int64_t i = 0; i < c; ++i)
    if (in[i]) out_v[o] = vals[i], out_i[o++] = idx[i];
}

inline bool cpu_has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}
#endif

template <typename T, int64_t G>
int64_t chunked_candidates(const T* row, int64_t n, int64_t k, T* cand_v, int64_t* cand_i, T* floor, int32_t* pos) {
#ifdef STEP_AVX512
  if constexpr (std::is_same<T, float>::value)
    if (cpu_has_avx512() && use_avx512) return candidates_avx512<G>(row, n, k, cand_v, cand_i, floor, pos);
#endif
  return candidates<T, G>(row, n, k, cand_v, cand_i, floor);
}

// candidates() with the smallest chunk count G >= 2k that the row is long enough for (2G <= n);
// -2 when there is none, -1 for a NaN in the row. pos: scratch room for n positions.
template <typename T>
int64_t any_candidates(const T* row, int64_t n, int64_t k, T* cand_v, int64_t* cand_i, T* floor, int32_t* pos) {
  if (2 * k <= 16 && 32 <= n) return chunked_candidates<T, 16>(row, n, k, cand_v, cand_i, floor, pos);
  if (2 * k <= 32 && 64 <= n) return chunked_candidates<T, 32>(row, n, k, cand_v, cand_i, floor, pos);
  if (2 * k <= 64 && 128 <= n) return chunked_candidates<T, 64>(row, n, k, cand_v, cand_i, floor, pos);
  if (2 * k <= 128 && 256 <= n) return chunked_candidates<T, 128>(row, n, k, cand_v, cand_i, floor, pos);
  if (2 * k <= 256 && 512 <= n) return chunked_candidates<T, 256>(row, n, k, cand_v, cand_i, floor, pos);
  return -2;
}

template <typename T>
void topk_one_row(const T* row, int64_t n, int64_t k, T* out_v, int64_t* out_i, T* cand_v, int64_t* cand_i,
                  T* tmp, int32_t* pos) {
  int64_t c = any_candidates(row, n, k, cand_v, cand_i, (T*)nullptr, pos);
  if (c < k) {  // a NaN in the row, or no chunking for this k: every entry is a candidate
    for (int64_t j = 0; j < n; ++j) {
      cand_v[j] = row[j];
      cand_i[j] = j;
    }
    c = n;
  }
#ifdef STEP_AVX512
  if constexpr (std::is_same<T, float>::value)
    if (c < n && c <= 128 && cpu_has_avx512() && use_avx512)  // chunked candidates: no NaN among them
      return keep_largest_avx512(cand_v, cand_i, c, k, out_v, out_i);
#endif
  keep_largest(cand_v, cand_i, c, k, tmp);
  std::copy(cand_v, cand_v + k, out_v);
  std::copy(cand_i, cand_i + k, out_i);
}

template <typename T>
STEP_CLONES T dot(const T* a, const T* b, int64_t n) {
  constexpr int64_t W = 16;
  T acc[W] = {};
  int64_t i = 0;
  for (; i + W <= n; i += W)
    for (int64_t l = 0; l < W; ++l) acc[l] += a[i + l] * b[i + l];
  T s = 0;
  for (int64_t l = 0; l < W; ++l) s += acc[l];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}


// The K-th largest of v[0..n) (n >= K >= 1, no NaN), reordering v.
template <typename T>
T kth_largest(T* v, int64_t n, int64_t K) {
  std::nth_element(v, v + K - 1, v + n, [](T a, T b) { return a > b; });
  return v[K - 1];
}

// An unsigned key of x that sorts as x does (no NaN): the sign bit flipped for x >= 0, every bit
// for x < 0.
inline uint64_t order_key(float x) {
  uint32_t u;
  __builtin_memcpy(&u, &x, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
inline uint64_t order_key(double x) {
  uint64_t u;
  __builtin_memcpy(&u, &x, 8);
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}

// The K-th largest of the rows' candidates (rows r of `count[r]` values at v + r * stride; n >= K
// >= 1 in all, no NaN), without copying them all: a histogram of their keys' top 16 bits finds
// the bin that holds it, and only that bin's values are selected among.
template <typename T>
T kth_largest_of_rows(const T* v, int64_t stride, const int64_t* count, int64_t rows, int64_t K) {
  constexpr int shift = 8 * sizeof(T) - 16;
  std::vector<int64_t> hist(1 << 16, 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < count[r]; ++j) ++hist[order_key(v[r * stride + j]) >> shift];
  int64_t above = 0, bin = (1 << 16) - 1;
  for (; bin > 0 && above + hist[bin] < K; --bin) above += hist[bin];
  std::vector<T> in_bin;
  in_bin.reserve(hist[bin]);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < count[r]; ++j)
      if ((int64_t)(order_key(v[r * stride + j]) >> shift) == bin) in_bin.push_back(v[r * stride + j]);
  return kth_largest(in_bin.data(), (int64_t)in_bin.size(), K - above);
}

template <typename T>
bool has_nan(const T* row, int64_t n) {
  int nan = 0;
  for (int64_t j = 0; j < n; ++j) nan |= row[j] != row[j];
  return nan != 0;
}

// One row's share of a batch-wide selection: entries >= t and > 0, in column order, from its
// candidates or (a full row) from the whole row. Returns the count; writes only if out_v.
template <typename T>
int64_t kept_of_row(const T* row, int64_t S, bool full, const T* cv, const int32_t* ci, int64_t c, T t,
                    T* out_v, int64_t* out_i) {
  int64_t o = 0;
  if (full) {
    for (int64_t j = 0; j < S; ++j)
      if (row[j] >= t && row[j] > 0) {
        if (out_v) out_v[o] = row[j], out_i[o] = j;
        ++o;
      }
  } else {
    for (int64_t j = 0; j < c; ++j)
      if (cv[j] >= t && cv[j] > 0) {
        if (out_v) out_v[o] = cv[j], out_i[o] = ci[j];
        ++o;
      }
  }
  return o;
}

#ifdef STEP_AVX512
// kept_of_row() for a float row that is not full, 16 candidates at a time: the kept ones packed
// by a compress into a register and written with a masked store (nothing past the row's share).
__attribute__((target("avx512f"))) int64_t kept_of_candidates_avx512(const float* cv, const int32_t* ci, int64_t c,
                                                                     float t, float* out_v, int64_t* out_i) {
  const __m512 tv = _mm512_set1_ps(t), zero = _mm512_setzero_ps();
  int64_t o = 0;
  for (int64_t j = 0; j < c; j += 16) {
    const __mmask16 valid = c - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (c - j)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(valid, cv + j);
    const __mmask16 keep = _mm512_cmp_ps_mask(v, tv, _CMP_GE_OQ) & _mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ) & valid;
    const int n = __builtin_popcount((unsigned)keep);
    if (out_v && n) {
      const __mmask16 first = (__mmask16)((1u << n) - 1);
      _mm512_mask_storeu_ps(out_v + o, first, _mm512_maskz_compress_ps(keep, v));
      const __m512i at = _mm512_maskz_compress_epi32(keep, _mm512_maskz_loadu_epi32(valid, ci + j));
      _mm512_mask_storeu_epi64(out_i + o, (__mmask8)(first & 0xFF), _mm512_cvtepi32_epi64(_mm512_castsi512_si256(at)));
      _mm512_mask_storeu_epi64(out_i + o + 8, (__mmask8)(first >> 8),
                               _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(at, 1)));
    }
    o += n;
  }
  return o;
}
#endif

// kept_of_row(), by the AVX-512 pass where it applies.
template <typename T>
int64_t kept_of(const T* row, int64_t S, bool full, const T* cv, const int32_t* ci, int64_t c, T t, T* out_v,
                int64_t* out_i) {
#ifdef STEP_AVX512
  if constexpr (std::is_same<T, float>::value)
    if (!full && cpu_has_avx512() && use_avx512) return kept_of_candidates_avx512(cv, ci, c, t, out_v, out_i);
#endif
  return kept_of_row<T>(row, S, full, cv, ci, c, t, out_v, out_i);
}

// The decoder's side of a sparse TopK-family step's backward, for the pairs j0..j1 of one latent
// (see sparse_backward below). Written with explicit 64-byte vectors: without -ffast-math the
// compiler keeps a dot product scalar.
template <typename T>
STEP_CLONES void latent_grads(const T* __restrict__ g, const T* __restrict__ wdec, const T* __restrict__ vals,
                              const int64_t* __restrict__ tok, const int64_t* __restrict__ perm, int64_t j0,
                              int64_t j1, int64_t d, T scale, T* __restrict__ gdec, T* __restrict__ gpre,
                              T* __restrict__ gsorted, T* gbias) {
  typedef typename Lanes<T>::V V;
  constexpr int64_t L = 64 / sizeof(T);
  const int64_t dv = d - d % L;
  for (int64_t l = 0; l < d; ++l) gdec[l] = 0;
  T gb = 0;
  for (int64_t j = j0; j < j1; ++j) {
    const int64_t p = perm[j];
    const T v = vals[p];
    if (!(v > 0)) {  // relu: no decoder row is added, and nothing flows back to pre
      gpre[p] = 0, gsorted[j] = 0;
      continue;
    }
    const T* gr = g + tok[j] * d;
    V a0 = {}, a1 = {};
    int64_t l = 0;
    for (; l + 2 * L <= dv; l += 2 * L) {
      V g0, g1, w0, w1;
      __builtin_memcpy(&g0, gr + l, 64), __builtin_memcpy(&g1, gr + l + L, 64);
      __builtin_memcpy(&w0, wdec + l, 64), __builtin_memcpy(&w1, wdec + l + L, 64);
      a0 += g0 * w0, a1 += g1 * w1;
      V h0, h1;
      __builtin_memcpy(&h0, gdec + l, 64), __builtin_memcpy(&h1, gdec + l + L, 64);
      h0 += v * g0, h1 += v * g1;
      __builtin_memcpy(gdec + l, &h0, 64), __builtin_memcpy(gdec + l + L, &h1, 64);
    }
    for (; l < dv; l += L) {
      V g0, w0, h0;
      __builtin_memcpy(&g0, gr + l, 64), __builtin_memcpy(&w0, wdec + l, 64), __builtin_memcpy(&h0, gdec + l, 64);
      a0 += g0 * w0, h0 += v * g0;
      __builtin_memcpy(gdec + l, &h0, 64);
    }
    a0 += a1;
    T dot = 0;
    for (int64_t q = 0; q < L; ++q) dot += a0[q];
    for (l = dv; l < d; ++l) dot += gr[l] * wdec[l], gdec[l] += v * gr[l];
    dot *= scale;
    gpre[p] = dot, gsorted[j] = dot;
    gb += dot;
  }
  if (scale != T(1))
    for (int64_t l = 0; l < d; ++l) gdec[l] *= scale;
  *gbias = gb;
}


// out = sum over j0..j1 of w[j] table[idx[j]] - base (base may be null: nothing subtracted), and
// the sum of out's squares (accumulated in lanes, then added up in a fixed order). The rows are
// summed 4 vectors of columns at a time in registers, so each row is only loaded (prefetching
// the next rows measured slower: the gathers already run at the L3's bandwidth). Serves the
// decoder's forward (per token, base = x - b_dec) and the W_enc gradient (per latent, no base).
template <typename T>
STEP_CLONES T rows_sum(const T* __restrict__ table, const T* __restrict__ w, const int64_t* __restrict__ idx,
                       int64_t j0, int64_t j1, const T* __restrict__ base, int64_t d, T* __restrict__ out) {
  typedef typename Lanes<T>::V V;
  constexpr int64_t L = 64 / sizeof(T);
  const int64_t dv = d - d % L;
  auto start = [&](int64_t l) {
    V h = {};
    if (base) __builtin_memcpy(&h, base + l, 64), h = -h;
    return h;
  };
  V q = {};
  int64_t l = 0;
  for (; l + 4 * L <= dv; l += 4 * L) {
    V h0 = start(l), h1 = start(l + L), h2 = start(l + 2 * L), h3 = start(l + 3 * L);
    for (int64_t j = j0; j < j1; ++j) {
      const T a = w[j];
      const T* row = table + idx[j] * d + l;
      V w0, w1, w2, w3;
      __builtin_memcpy(&w0, row, 64), __builtin_memcpy(&w1, row + L, 64);
      __builtin_memcpy(&w2, row + 2 * L, 64), __builtin_memcpy(&w3, row + 3 * L, 64);
      h0 += a * w0, h1 += a * w1, h2 += a * w2, h3 += a * w3;
    }
    __builtin_memcpy(out + l, &h0, 64), __builtin_memcpy(out + l + L, &h1, 64);
    __builtin_memcpy(out + l + 2 * L, &h2, 64), __builtin_memcpy(out + l + 3 * L, &h3, 64);
    q += h0 * h0 + h1 * h1 + h2 * h2 + h3 * h3;
  }
  for (; l < dv; l += L) {
    V h0 = start(l);
    for (int64_t j = j0; j < j1; ++j) {
      V w0;
      __builtin_memcpy(&w0, table + idx[j] * d + l, 64);
      h0 += w[j] * w0;
    }
    __builtin_memcpy(out + l, &h0, 64);
    q += h0 * h0;
  }
  T sq = 0;
  for (int64_t i = 0; i < L; ++i) sq += q[i];
  for (; l < d; ++l) {
    T h = base ? -base[l] : T(0);
    for (int64_t j = j0; j < j1; ++j) h += w[j] * table[idx[j] * d + l];
    out[l] = h;
    sq += h * h;
  }
  return sq;
}

}  // namespace

std::vector<torch::Tensor> topk_rows(const torch::Tensor& pre, int64_t k) {
  TORCH_CHECK(pre.dim() == 2 && pre.is_contiguous() && pre.device().is_cpu(), "topk_rows: a contiguous 2-d CPU tensor");
  const int64_t B = pre.size(0), S = pre.size(1);
  TORCH_CHECK(k >= 1 && k <= S, "topk_rows: k out of range");
  auto vals = torch::empty({B, k}, pre.options());
  auto idx = torch::empty({B, k}, pre.options().dtype(torch::kInt64));
  AT_DISPATCH_FLOATING_TYPES(pre.scalar_type(), "topk_rows", [&] {
    const scalar_t* p = pre.data_ptr<scalar_t>();
    scalar_t* v = vals.data_ptr<scalar_t>();
    int64_t* ix = idx.data_ptr<int64_t>();
    at::parallel_for(0, B, 16, [&](int64_t b0, int64_t b1) {
      std::vector<scalar_t> cand_v(S), tmp(S);
      std::vector<int64_t> cand_i(S);
      std::vector<int32_t> pos(S);
      for (int64_t b = b0; b < b1; ++b)
        topk_one_row(p + b * S, S, k, v + b * k, ix + b * k, cand_v.data(), cand_i.data(), tmp.data(), pos.data());
    });
  });
  return {vals, idx};
}

torch::Tensor pair_dots(const torch::Tensor& rows, const torch::Tensor& table, const torch::Tensor& row_of,
                        const torch::Tensor& col_of) {
  TORCH_CHECK(rows.is_contiguous() && table.is_contiguous() && rows.dim() == 2 && table.dim() == 2 &&
                  rows.size(1) == table.size(1) && rows.scalar_type() == table.scalar_type(),
              "pair_dots: contiguous [*, d] rows and table of one dtype");
  TORCH_CHECK(row_of.scalar_type() == torch::kInt64 && col_of.scalar_type() == torch::kInt64 &&
                  row_of.is_contiguous() && col_of.is_contiguous() && row_of.numel() == col_of.numel(),
              "pair_dots: int64 row and column indices of equal length");
  const int64_t n = row_of.numel(), d = rows.size(1);
  auto out = torch::empty({n}, rows.options());
  AT_DISPATCH_FLOATING_TYPES(rows.scalar_type(), "pair_dots", [&] {
    const scalar_t* a = rows.data_ptr<scalar_t>();
    const scalar_t* t = table.data_ptr<scalar_t>();
    const int64_t* r = row_of.data_ptr<int64_t>();
    const int64_t* c = col_of.data_ptr<int64_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, n, 2048, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) o[j] = dot(a + r[j] * d, t + c[j] * d, d);
    });
  });
  return out;
}


// The batch-wide selection of BatchTopK: every entry of pre [B, S] that is > 0 and >= the K-th
// largest entry of pre, as rows of (value, column) in column order, and each row's offset.
// Each row's candidates are its entries >= a floor that m of them reach (candidates() above);
// t_c, the K-th largest candidate, is at most the true threshold. A row whose floor is above
// t_c (and above 0) may hold winners below its floor: it is "full" and is read whole, and the
// K-th largest of the completed set is the true threshold. Rows that chunking cannot serve are
// full from the start. Returns nothing when pre holds a NaN (the caller's torch path decides).
std::vector<torch::Tensor> batch_topk(const torch::Tensor& pre, int64_t K, int64_t m) {
  TORCH_CHECK(pre.dim() == 2 && pre.is_contiguous() && pre.device().is_cpu(), "batch_topk: a contiguous 2-d CPU tensor");
  const int64_t B = pre.size(0), S = pre.size(1);
  TORCH_CHECK(K >= 1 && K <= B * S && m >= 1 && m <= S, "batch_topk: K or m out of range");
  std::vector<torch::Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(pre.scalar_type(), "batch_topk", [&] {
    using T = scalar_t;
    const T* p = pre.data_ptr<T>();
    const int64_t cap = std::min<int64_t>(S, 2 * m);  // candidates kept per row; more: the row is full
    // plain locals: the parallel loops below read and write them from other threads (a thread_local
    // here would name each worker's own, empty, copy)
    std::vector<T> cand_v(B * cap), pool, floors(B);
    std::vector<int32_t> cand_i(B * cap);
    std::vector<int64_t> count(B), kept(B + 1);
    T* cv = cand_v.data();
    int32_t* ci = cand_i.data();
    const T inf = std::numeric_limits<T>::infinity();
    std::atomic<bool> nan{false};
    at::parallel_for(0, B, 16, [&](int64_t b0, int64_t b1) {
      std::vector<T> sv(S);
      std::vector<int64_t> si(S);
      std::vector<int32_t> pos(S);
      for (int64_t b = b0; b < b1; ++b) {
        const T* row = p + b * S;
        T floor = inf;
        int64_t c = any_candidates(row, S, m, sv.data(), si.data(), &floor, pos.data());
        if (c == -1 || (c == -2 && has_nan(row, S))) nan = true;
        if (c < 0 || c > cap) c = 0, floor = inf;  // full: read whole later
        for (int64_t j = 0; j < c; ++j) cv[b * cap + j] = sv[j], ci[b * cap + j] = (int32_t)si[j];
        count[b] = c, floors[b] = floor;
      }
    });
    if (nan) return;
    int64_t total = 0;
    for (int64_t b = 0; b < B; ++b) total += count[b];
    T t = total >= K ? kth_largest_of_rows(cv, cap, count.data(), B, K) : -inf;
    std::vector<char> full(B);
    bool any_full = false;
    for (int64_t b = 0; b < B; ++b) any_full |= (full[b] = floors[b] > t && floors[b] > 0);
    if (any_full) {  // complete the set of entries >= t, then its K-th largest
      pool.clear();
      for (int64_t b = 0; b < B; ++b) {
        const T* row = p + b * S;
        if (full[b]) {
          for (int64_t j = 0; j < S; ++j)
            if (row[j] >= t) pool.push_back(row[j]);
        } else {
          for (int64_t j = 0; j < count[b]; ++j)
            if (cv[b * cap + j] >= t) pool.push_back(cv[b * cap + j]);
        }
      }
      const int64_t n = (int64_t)pool.size();
      t = n >= K ? kth_largest(pool.data(), n, K) : -inf;
    }
    at::parallel_for(0, B, 64, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        kept[b + 1] = kept_of<T>(p + b * S, S, full[b], cv + b * cap, ci + b * cap, count[b], t, nullptr, nullptr);
    });
    kept[0] = 0;
    for (int64_t b = 0; b < B; ++b) kept[b + 1] += kept[b];
    auto vals = torch::empty({kept[B]}, pre.options());
    auto cols = torch::empty({kept[B]}, pre.options().dtype(torch::kInt64));
    auto offsets = torch::empty({B}, pre.options().dtype(torch::kInt64));
    T* v = vals.data_ptr<T>();
    int64_t* c = cols.data_ptr<int64_t>();
    int64_t* off = offsets.data_ptr<int64_t>();
    at::parallel_for(0, B, 64, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        off[b] = kept[b];
        kept_of<T>(p + b * S, S, full[b], cv + b * cap, ci + b * cap, count[b], t, v + kept[b], c + kept[b]);
      }
    });
    result = {vals, cols, offsets};
  });
  return result;
}

// The decoder's side of the backward of a sparse TopK-family step, x_hat = sum_j relu(vals[j])
// W_dec[idx[j]], in one pass over the latents: for the pairs (token b, value v) of latent s
// (the Bags grouping by latent: tok, perm, offsets), with g = dL/dx_hat,
//   g_W_dec[s] = sum relu(v) g[b],   g_pre[j] = [v > 0] g[b] . W_dec[s],   g_b_enc[s] = sum g_pre;
// g_pre comes back in the pairs' own order (like vals). The row g[b] is read once for both
// decoder terms and W_dec[s] stays in cache. Each latent's sums run on one thread in pair
// order: deterministic at any thread count.
std::vector<torch::Tensor> sparse_backward(const torch::Tensor& g, const torch::Tensor& W_dec, const torch::Tensor& vals,
                                           const torch::Tensor& tok, const torch::Tensor& perm,
                                           const torch::Tensor& latent_offsets, double scale) {
  TORCH_CHECK(g.dim() == 2 && W_dec.dim() == 2 && W_dec.size(1) == g.size(1) && g.is_contiguous() &&
                  W_dec.is_contiguous() && vals.is_contiguous() && g.scalar_type() == W_dec.scalar_type() &&
                  g.scalar_type() == vals.scalar_type(),
              "sparse_backward: contiguous g [B, d] and W_dec [S, d] and vals of one dtype");
  TORCH_CHECK(tok.scalar_type() == torch::kInt64 && perm.scalar_type() == torch::kInt64 &&
                  latent_offsets.scalar_type() == torch::kInt64 && tok.is_contiguous() && perm.is_contiguous() &&
                  latent_offsets.is_contiguous() && tok.numel() == vals.numel() && perm.numel() == vals.numel() &&
                  latent_offsets.numel() == W_dec.size(0),
              "sparse_backward: int64 tokens, order and latent offsets");
  const int64_t S = W_dec.size(0), d = W_dec.size(1), n = vals.numel();
  auto g_dec = torch::empty({S, d}, g.options());
  auto g_pre = torch::empty({n}, g.options());
  auto g_benc = torch::empty({S}, g.options());
  auto g_sorted = torch::empty({n}, g.options());
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "sparse_backward", [&] {
    using T = scalar_t;
    const int64_t* off = latent_offsets.data_ptr<int64_t>();
    const T *gp = g.data_ptr<T>(), *wp = W_dec.data_ptr<T>(), *vp = vals.data_ptr<T>();
    const int64_t *tp = tok.data_ptr<int64_t>(), *pp = perm.data_ptr<int64_t>();
    T *gd = g_dec.data_ptr<T>(), *gq = g_pre.data_ptr<T>(), *gb = g_benc.data_ptr<T>(), *gs = g_sorted.data_ptr<T>();
    at::parallel_for(0, S, 32, [&](int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s)
        latent_grads<T>(gp, wp + s * d, vp, tp, pp, off[s], s + 1 < S ? off[s + 1] : n, d, T(scale), gd + s * d, gq, gs,
                        gb + s);
    });
  });
  return {g_dec, g_pre, g_benc, g_sorted};
}

// The forward of a sparse TopK-family step's decoder and its squared error in one pass per token:
// r[b] = sum over b's pairs of acts[j] W_dec[idx[j]] - xc[b] (the reconstruction x_hat + b_dec - x,
// as xc = x - b_dec), and sse = sum of r's squares (per-token sums added in token order, in
// double). Pairs of token b are idx[offsets[b]..offsets[b+1]). Returns (r, sse as a 0-d tensor).
std::vector<torch::Tensor> decode_residual(const torch::Tensor& W_dec, const torch::Tensor& acts,
                                           const torch::Tensor& idx, const torch::Tensor& offsets,
                                           const torch::Tensor& xc) {
  TORCH_CHECK(W_dec.dim() == 2 && xc.dim() == 2 && W_dec.size(1) == xc.size(1) && W_dec.is_contiguous() &&
                  xc.is_contiguous() && acts.is_contiguous() && W_dec.scalar_type() == xc.scalar_type() &&
                  acts.scalar_type() == xc.scalar_type(),
              "decode_residual: contiguous W_dec [S, d], xc [B, d] and acts of one dtype");
  TORCH_CHECK(idx.scalar_type() == torch::kInt64 && offsets.scalar_type() == torch::kInt64 && idx.is_contiguous() &&
                  offsets.is_contiguous() && idx.numel() == acts.numel() && offsets.numel() == xc.size(0),
              "decode_residual: int64 pairs and row offsets");
  const int64_t B = xc.size(0), d = xc.size(1), n = idx.numel();
  auto r = torch::empty({B, d}, xc.options());
  std::vector<double> row_sq(B);
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "decode_residual", [&] {
    using T = scalar_t;
    const T *w = W_dec.data_ptr<T>(), *a = acts.data_ptr<T>(), *x = xc.data_ptr<T>();
    const int64_t *ix = idx.data_ptr<int64_t>(), *off = offsets.data_ptr<int64_t>();
    T* rp = r.data_ptr<T>();
    at::parallel_for(0, B, 64, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        row_sq[b] = rows_sum<T>(w, a, ix, off[b], b + 1 < B ? off[b + 1] : n, x + b * d, d, rp + b * d);
    });
  });
  double sse = 0;
  for (int64_t b = 0; b < B; ++b) sse += row_sq[b];
  return {r, torch::full({}, sse, xc.options())};
}

// In place, row by row: g[s] -= (g[s] . w[s]) w[s] (the decoder gradient kept tangent to the unit
// sphere); or, with g undefined, w[s] /= max(||w[s]||, eps). One read of each row, in cache.
void project_rows(torch::Tensor g, torch::Tensor w, double eps) {
  const bool proj = g.defined() && g.numel() > 0;
  TORCH_CHECK(w.dim() == 2 && w.is_contiguous() && (!proj || (g.sizes() == w.sizes() && g.is_contiguous() &&
                                                              g.scalar_type() == w.scalar_type())),
              "project_rows: contiguous [S, d] rows of one dtype");
  const int64_t S = w.size(0), d = w.size(1);
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "project_rows", [&] {
    using T = scalar_t;
    T* wp = w.data_ptr<T>();
    T* gp = proj ? g.data_ptr<T>() : nullptr;
    at::parallel_for(0, S, 64, [&](int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s) {
        T* wr = wp + s * d;
        if (proj) {
          T* gr = gp + s * d;
          const T along = dot<T>(gr, wr, d);
          for (int64_t l = 0; l < d; ++l) gr[l] -= along * wr[l];
        } else {
          const T norm = std::max<T>(std::sqrt(dot<T>(wr, wr, d)), T(eps));
          for (int64_t l = 0; l < d; ++l) wr[l] /= norm;
        }
      }
    });
  });
}

// The Bags grouping by latent of the pairs (rows[j], idx[j]): a stable counting sort of idx over
// [0, S) (the order torch.sort(stable=True) gives), and each pair's token in that order. Returns
// (perm, tokens, latent_offsets), all int64.
std::vector<torch::Tensor> group_by_latent(const torch::Tensor& idx, const torch::Tensor& rows, int64_t S) {
  TORCH_CHECK(idx.scalar_type() == torch::kInt64 && rows.scalar_type() == torch::kInt64 && idx.is_contiguous() &&
                  rows.is_contiguous() && idx.numel() == rows.numel() && S >= 1,
              "group_by_latent: int64 pairs and their rows");
  const int64_t n = idx.numel();
  auto opt = idx.options();
  auto perm = torch::empty({n}, opt), tokens = torch::empty({n}, opt), offsets = torch::empty({S}, opt);
  const int64_t* ix = idx.data_ptr<int64_t>();
  const int64_t* rw = rows.data_ptr<int64_t>();
  int64_t *pp = perm.data_ptr<int64_t>(), *tp = tokens.data_ptr<int64_t>(), *op = offsets.data_ptr<int64_t>();
  std::vector<int64_t> next(S, 0);
  for (int64_t j = 0; j < n; ++j) {
    TORCH_CHECK(ix[j] >= 0 && ix[j] < S, "group_by_latent: a latent index out of range");
    ++next[ix[j]];
  }
  int64_t start = 0;
  for (int64_t s = 0; s < S; ++s) op[s] = start, start += next[s], next[s] = op[s];
  for (int64_t j = 0; j < n; ++j) {
    const int64_t at = next[ix[j]]++;
    pp[at] = j, tp[at] = rw[j];
  }
  return {perm, tokens, offsets};
}

// The W_enc gradient of a sparse TopK-family step, laid out as W_enc's memory ([S, d], row s for
// latent s): row s = sum over s's pairs (in the Bags grouping by latent: tokens, offsets) of
// g_sorted[j] xc[tokens[j]], where g_sorted is the pre-activations' gradient in that same order.
torch::Tensor per_latent_sum(const torch::Tensor& xc, const torch::Tensor& g_sorted, const torch::Tensor& tokens,
                             const torch::Tensor& latent_offsets) {
  TORCH_CHECK(xc.dim() == 2 && xc.is_contiguous() && g_sorted.is_contiguous() && g_sorted.scalar_type() == xc.scalar_type(),
              "per_latent_sum: contiguous xc [B, d] and weights of one dtype");
  TORCH_CHECK(tokens.scalar_type() == torch::kInt64 && latent_offsets.scalar_type() == torch::kInt64 &&
                  tokens.is_contiguous() && latent_offsets.is_contiguous() && tokens.numel() == g_sorted.numel(),
              "per_latent_sum: int64 tokens and latent offsets");
  const int64_t S = latent_offsets.numel(), d = xc.size(1), n = tokens.numel();
  auto out = torch::empty({S, d}, xc.options());
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "per_latent_sum", [&] {
    using T = scalar_t;
    const T *x = xc.data_ptr<T>(), *g = g_sorted.data_ptr<T>();
    const int64_t *tk = tokens.data_ptr<int64_t>(), *off = latent_offsets.data_ptr<int64_t>();
    T* o = out.data_ptr<T>();
    at::parallel_for(0, S, 32, [&](int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s)
        rows_sum<T>(x, g, tk, off[s], s + 1 < S ? off[s + 1] : n, (const T*)nullptr, d, o + s * d);
    });
  });
  return out;
}

// Whether the float candidate pass may use AVX-512 (where the CPU has it); returns whether it does.
bool set_avx512(bool on) {
  use_avx512 = on;
#ifdef STEP_AVX512
  return on && cpu_has_avx512();
#else
  return false;
#endif
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("set_avx512", &set_avx512, "allow (or not) the AVX-512 candidate pass for float rows; returns whether it runs");
  m.def("topk_rows", &topk_rows, "the k largest entries of each row (values, int64 indices), unsorted");
  m.def("pair_dots", &pair_dots, "rows[row_of[j]] . table[col_of[j]] for each j");
  m.def("batch_topk", &batch_topk, "entries > 0 and >= the K-th largest of pre: (vals, int64 cols, row offsets), or []");
  m.def("group_by_latent", &group_by_latent, "(perm, tokens, latent_offsets): the pairs grouped by latent, stably");
  m.def("per_latent_sum", &per_latent_sum, "row s = sum of g_sorted[j] xc[tokens[j]] over latent s's pairs");
  m.def("decode_residual", &decode_residual, "(x_hat + b_dec - x, its sum of squares) of a sparse TopK-family step");
  m.def("project_rows", &project_rows, "g[s] -= (g[s].w[s]) w[s] in place; with g empty, w[s] /= max(|w[s]|, eps)");
  m.def("sparse_backward", &sparse_backward, "(g_W_dec, g_pre, g_b_enc, g_pre in the latents' order) of a sparse TopK-family step, g scaled by scale",
        py::arg("g"), py::arg("W_dec"), py::arg("vals"), py::arg("tok"), py::arg("perm"), py::arg("latent_offsets"),
        py::arg("scale") = 1.0);
}
