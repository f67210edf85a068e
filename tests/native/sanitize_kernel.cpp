// Runs every entry point of src/globalconv/ops/native_fft.cpp on odd shapes (partial strips,
// the smallest size, per-sequence kernels, null optional outputs) and thread counts, on arrays
// of exactly the documented sizes, so that AddressSanitizer and UBSan see any access outside
// them. Built and run by tests/test_ops_native.py.
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <complex>
#include <cmath>
extern "C" {
int gc_rfft_f32(const float*, int, int, int, int, float*, int);
int gc_forward_f32(const float*, int, int, int, const float*, int, int, int, float*, int, float*, int);
int gc_backward_f32(const float*, int, int, int, const float*, int, int, int, float*, int, const float*, float*, int, int);
int gc_forward_f64(const double*, int, int, int, const double*, int, int, int, double*, int, double*, int);
int gc_backward_f64(const double*, int, int, int, const double*, int, int, int, double*, int, const double*, double*, int, int);
int gc_rfft_f64(const double*, int, int, int, int, double*, int);
}
template <typename T, typename R, typename F, typename Bk>
void run(R rfft, F fwd, Bk bwd, int B, int L, int T_, int D, int N, int out_len, int BK, int threads) {
  int Fq = N / 2 + 1;
  // exact-size heap arrays so ASan catches any overrun
  std::vector<T>* keep = new std::vector<T>[9];
  auto arr = [&](int i, size_t n) { keep[i].assign(n, T(0.5)); return keep[i].data(); };
  T* x = arr(0, size_t(B) * L * D); T* k = arr(1, size_t(BK) * T_ * D); T* K = arr(2, size_t(BK) * Fq * D * 2);
  T* y = arr(3, size_t(B) * out_len * D); T* X = arr(4, size_t(B) * Fq * D * 2); T* g = arr(5, size_t(B) * out_len * D);
  T* gx = arr(6, size_t(B) * L * D); T* gk = arr(7, size_t(BK) * T_ * D);
  int status = rfft(k, BK, T_, D, N, K, threads);
  for (int c = 0; c < 2; ++c) {
    status |= fwd(x, B, L, D, K, BK, c, N, y, out_len, X, threads);
    status |= fwd(x, B, L, D, K, BK, c, N, y, out_len, nullptr, threads);
    status |= bwd(g, B, out_len, D, K, BK, c, N, gx, L, X, gk, T_, threads);
    status |= bwd(g, B, out_len, D, K, BK, c, N, nullptr, L, X, gk, T_, threads);
    status |= bwd(g, B, out_len, D, K, BK, c, N, gx, L, nullptr, nullptr, T_, threads);
  }
  if (status != 0) { printf("status %d\n", status); std::exit(1); }
  for (size_t i = 0; i < keep[3].size(); ++i) if (!std::isfinite(double(keep[3][i]))) { printf("nonfinite\n"); std::exit(1); }
  delete[] keep;
}
int main() {
  int shapes[][7] = {{1, 2, 2, 1, 4, 3, 1}, {3, 5, 3, 33, 16, 16, 1}, {2, 40, 79, 17, 128, 40, 2}, {2, 64, 64, 70, 64, 64, 1},
                     {3, 7, 7, 31, 8, 8, 3}, {2, 100, 60, 65, 256, 100, 2}};
  for (auto& s : shapes)
    for (int th : {1, 2, 3}) {
      run<float>(gc_rfft_f32, gc_forward_f32, gc_backward_f32, s[0], s[1], s[2], s[3], s[4], s[5], s[6], th);
      run<double>(gc_rfft_f64, gc_forward_f64, gc_backward_f64, s[0], s[1], s[2], s[3], s[4], s[5], s[6], th);
    }
  printf("ok\n");
}
