// Two loops of a TopK SAE step that torch has no cheap operator for (sae/native.py loads this
// file; sae/select.py and sae/kernels.py hold the torch versions it must agree with).
//
// topk_rows: the k largest entries of each row from one vectorised pass over it and a compare
// against a floor (candidates() below): a few more than k entries survive, and a selection among
// them picks the k. NaN counts as the largest value, as in torch.topk, so a NaN still reaches the
// loss and stops training.
//
// pair_dots: rows[r[j]] . table[c[j]] for every selected pair j, the decoder gradient's
// per-pair dots; torch's kernel for it calls a BLAS dot per pair.
//
// Both are deterministic: each output is computed by one thread in a fixed order.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <cmath>
#include <vector>
#include <cstdint>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define STEP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define STEP_CLONES
#endif

namespace {

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

// candidates() with the smallest chunk count G >= 2k that the row is long enough for (2G <= n);
// -2 when there is none, -1 for a NaN in the row.
template <typename T>
int64_t any_candidates(const T* row, int64_t n, int64_t k, T* cand_v, int64_t* cand_i, T* floor = nullptr) {
  if (2 * k <= 16 && 32 <= n) return candidates<T, 16>(row, n, k, cand_v, cand_i, floor);
  if (2 * k <= 32 && 64 <= n) return candidates<T, 32>(row, n, k, cand_v, cand_i, floor);
  if (2 * k <= 64 && 128 <= n) return candidates<T, 64>(row, n, k, cand_v, cand_i, floor);
  if (2 * k <= 128 && 256 <= n) return candidates<T, 128>(row, n, k, cand_v, cand_i, floor);
  if (2 * k <= 256 && 512 <= n) return candidates<T, 256>(row, n, k, cand_v, cand_i, floor);
  return -2;
}

template <typename T>
void topk_one_row(const T* row, int64_t n, int64_t k, T* out_v, int64_t* out_i, T* cand_v, int64_t* cand_i,
                  T* tmp) {
  int64_t c = any_candidates(row, n, k, cand_v, cand_i);
  if (c < k) {  // a NaN in the row, or no chunking for this k: every entry is a candidate
    for (int64_t j = 0; j < n; ++j) {
      cand_v[j] = row[j];
      cand_i[j] = j;
    }
    c = n;
  }
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

// The decoder's side of a sparse TopK-family step's backward, for the pairs j0..j1 of one latent
// (see sparse_backward below). Written with explicit 64-byte vectors: without -ffast-math the
// compiler keeps a dot product scalar.
template <typename T>
STEP_CLONES void latent_grads(const T* __restrict__ g, const T* __restrict__ wdec, const T* __restrict__ vals,
                              const int64_t* __restrict__ tok, const int64_t* __restrict__ perm, int64_t j0,
                              int64_t j1, int64_t d, T* __restrict__ gdec, T* __restrict__ gpre, T* gbias) {
  typedef typename Lanes<T>::V V;
  constexpr int64_t L = 64 / sizeof(T);
  const int64_t dv = d - d % L;
  for (int64_t l = 0; l < d; ++l) gdec[l] = 0;
  T gb = 0;
  for (int64_t j = j0; j < j1; ++j) {
    const int64_t p = perm[j];
    const T v = vals[p];
    if (!(v > 0)) {  // relu: no decoder row is added, and nothing flows back to pre
      gpre[p] = 0;
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
    gpre[p] = dot;
    gb += dot;
  }
  *gbias = gb;
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
      for (int64_t b = b0; b < b1; ++b)
        topk_one_row(p + b * S, S, k, v + b * k, ix + b * k, cand_v.data(), cand_i.data(), tmp.data());
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
    static thread_local std::vector<T> cand_v, pool;
    static thread_local std::vector<int32_t> cand_i;
    static thread_local std::vector<T> floors;
    static thread_local std::vector<int64_t> count, kept;
    cand_v.resize(B * cap), cand_i.resize(B * cap), floors.resize(B), count.resize(B), kept.resize(B + 1);
    T* cv = cand_v.data();
    int32_t* ci = cand_i.data();
    const T inf = std::numeric_limits<T>::infinity();
    std::atomic<bool> nan{false};
    at::parallel_for(0, B, 16, [&](int64_t b0, int64_t b1) {
      std::vector<T> sv(S);
      std::vector<int64_t> si(S);
      for (int64_t b = b0; b < b1; ++b) {
        const T* row = p + b * S;
        T floor = inf;
        int64_t c = any_candidates(row, S, m, sv.data(), si.data(), &floor);
        if (c == -1 || (c == -2 && has_nan(row, S))) nan = true;
        if (c < 0 || c > cap) c = 0, floor = inf;  // full: read whole later
        for (int64_t j = 0; j < c; ++j) cv[b * cap + j] = sv[j], ci[b * cap + j] = (int32_t)si[j];
        count[b] = c, floors[b] = floor;
      }
    });
    if (nan) return;
    int64_t total = 0;
    for (int64_t b = 0; b < B; ++b) total += count[b];
    pool.resize(std::max<int64_t>(total, 1));
    T t = -inf;
    if (total >= K) {
      int64_t o = 0;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t j = 0; j < count[b]; ++j) pool[o++] = cv[b * cap + j];
      t = kth_largest(pool.data(), total, K);
    }
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
        kept[b + 1] = kept_of_row<T>(p + b * S, S, full[b], cv + b * cap, ci + b * cap, count[b], t, nullptr, nullptr);
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
        kept_of_row<T>(p + b * S, S, full[b], cv + b * cap, ci + b * cap, count[b], t, v + kept[b], c + kept[b]);
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
                                           const torch::Tensor& latent_offsets) {
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
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "sparse_backward", [&] {
    using T = scalar_t;
    const int64_t* off = latent_offsets.data_ptr<int64_t>();
    const T *gp = g.data_ptr<T>(), *wp = W_dec.data_ptr<T>(), *vp = vals.data_ptr<T>();
    const int64_t *tp = tok.data_ptr<int64_t>(), *pp = perm.data_ptr<int64_t>();
    T *gd = g_dec.data_ptr<T>(), *gq = g_pre.data_ptr<T>(), *gb = g_benc.data_ptr<T>();
    at::parallel_for(0, S, 32, [&](int64_t s0, int64_t s1) {
      for (int64_t s = s0; s < s1; ++s)
        latent_grads<T>(gp, wp + s * d, vp, tp, pp, off[s], s + 1 < S ? off[s + 1] : n, d, gd + s * d, gq, gb + s);
    });
  });
  return {g_dec, g_pre, g_benc};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("topk_rows", &topk_rows, "the k largest entries of each row (values, int64 indices), unsorted");
  m.def("pair_dots", &pair_dots, "rows[row_of[j]] . table[col_of[j]] for each j");
  m.def("batch_topk", &batch_topk, "entries > 0 and >= the K-th largest of pre: (vals, int64 cols, row offsets), or []");
  m.def("sparse_backward", &sparse_backward, "(g_W_dec, g_pre, g_b_enc) of a sparse TopK-family step");
}
