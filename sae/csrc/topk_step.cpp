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
                               int64_t* __restrict__ cand_i) {
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

template <typename T>
void topk_one_row(const T* row, int64_t n, int64_t k, T* out_v, int64_t* out_i, T* cand_v, int64_t* cand_i,
                  T* tmp) {
  int64_t c = -1;
  if (2 * k <= 16 && 32 <= n) c = candidates<T, 16>(row, n, k, cand_v, cand_i);
  else if (2 * k <= 32 && 64 <= n) c = candidates<T, 32>(row, n, k, cand_v, cand_i);
  else if (2 * k <= 64 && 128 <= n) c = candidates<T, 64>(row, n, k, cand_v, cand_i);
  else if (2 * k <= 128 && 256 <= n) c = candidates<T, 128>(row, n, k, cand_v, cand_i);
  else if (2 * k <= 256 && 512 <= n) c = candidates<T, 256>(row, n, k, cand_v, cand_i);
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

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("topk_rows", &topk_rows, "the k largest entries of each row (values, int64 indices), unsorted");
  m.def("pair_dots", &pair_dots, "rows[row_of[j]] . table[col_of[j]] for each j");
}
