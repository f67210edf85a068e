// The global convolution's FFT path as one compiled kernel, in the caller's (B, L, D) layout.
//
// torch.fft transforms contiguous rows, so a (B, L, D) operator must copy its input to
// (B, D, L) and its output back; those copies cost about as much as the transforms. Here the
// length axis is transformed where it lies: a strip of W adjacent channels (two cache lines per
// row) is read row by row into a small buffer, and the FFT runs on all W channels at once, the
// channel being the SIMD lane. The products with the kernel's spectrum and the inverse
// transform follow on the same strip while it is in cache, so a signal crosses memory once on
// the way in and once on the way out.
//
// Transforms: a real signal x of even length N is packed as z[j] = x[2j] + i x[2j+1] (n = N/2
// complex points), Z = FFT_n(z) by a Stockham autosort FFT (radix 4, one radix-2 pass when
// log2 n is odd), and
//     X[k] = E[k] + exp(-2 pi i k/N) O[k],  E = (Z[k] + conj Z[n-k]) / 2,
//                                            O = (Z[k] - conj Z[n-k]) / 2i,  k = 0..n;
// the inverse runs the same steps backwards (irfft semantics: the imaginary parts of X[0] and
// X[n] are ignored). N must be a power of two, at least 4.
//
// The convolution (see globalconv/ops/fft.py for the formulas), correlate = c:
//     y  = irfft(X * (c ? conj K : K))[:out_len]
//     gx = irfft(G * (c ? K : conj K))[:L]                       G = rfft(grad_y)
//     gk = irfft(sum_b (c ? X_b conj G_b : conj X_b G_b))[:T]    (per b for per-sequence kernels)
// Spectra in memory are (batch, N/2 + 1, D) interleaved complex, as torch stores complex64/128.
// Threads: OpenMP, which resolves to the runtime torch has loaded, so this code shares torch's
// thread pool instead of competing with it.

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

namespace {

template <typename T>
struct Twiddles {  // w[j] = exp(-2 pi i j / n) for the FFT; h[k] = exp(-2 pi i k / N), k <= n
  std::vector<T> wr, wi, hr, hi;
  explicit Twiddles(int N) {
    const int n = N / 2;
    wr.resize(n), wi.resize(n), hr.resize(n + 1), hi.resize(n + 1);
    for (int j = 0; j < n; ++j) {
      wr[j] = T(std::cos(2 * M_PI * j / n)), wi[j] = T(-std::sin(2 * M_PI * j / n));
    }
    for (int k = 0; k <= n; ++k) {
      hr[k] = T(std::cos(2 * M_PI * k / N)), hi[k] = T(-std::sin(2 * M_PI * k / N));
    }
  }
};

template <typename T>
const Twiddles<T>& twiddles(int N) {
  static std::mutex lock;
  static std::map<int, std::unique_ptr<Twiddles<T>>> cache;
  std::lock_guard<std::mutex> guard(lock);
  auto& entry = cache[N];
  if (!entry) entry.reset(new Twiddles<T>(N));
  return *entry;
}

#ifndef AHEAD
#define AHEAD 16
#endif
// Rows of the caller's arrays are D apart, too far for the hardware to guess: ask for each row
// AHEAD rows before it is read or written.
template <typename T, int count>
inline void prefetch_row(const T* p, int write) {
  for (int i = 0; i < count; i += 64 / int(sizeof(T))) {
    if (write) __builtin_prefetch(p + i, 1); else __builtin_prefetch(p + i, 0);
  }
}

template <typename T>
T* zeros(size_t count) {  // 64-byte aligned; null when out of memory
  const size_t bytes = (sizeof(T) * count + 63) / 64 * 64;
  T* p = static_cast<T*>(std::aligned_alloc(64, bytes));
  if (p) std::memset(p, 0, bytes);
  return p;
}

// One thread's buffers for a strip of W channels: the packed signal (ping-pong) and two spectra;
// 8 n W values in all. `ok` is false when an allocation failed.
template <typename T, int W>
struct Workspace {
  int n;
  T *zr[2], *zi[2], *vr, *vi, *ar, *ai;
  bool ok;
  explicit Workspace(int n_) : n(n_) {
    for (int i = 0; i < 2; ++i) {
      zr[i] = zeros<T>(size_t(n) * W), zi[i] = zeros<T>(size_t(n) * W);
    }
    vr = zeros<T>(size_t(n + 1) * W), vi = zeros<T>(size_t(n + 1) * W);
    ar = zeros<T>(size_t(n + 1) * W), ai = zeros<T>(size_t(n + 1) * W);
    ok = zr[0] && zi[0] && zr[1] && zi[1] && vr && vi && ar && ai;
  }
  ~Workspace() {
    for (T* p : {zr[0], zi[0], zr[1], zi[1], vr, vi, ar, ai}) std::free(p);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
};

// Unnormalised FFT of the n points in (zr[0], zi[0]); sign -1 forward, +1 inverse. Returns the
// index (0 or 1) of the buffer holding the result.
template <typename T, int W>
int fft(Workspace<T, W>& ws, const Twiddles<T>& tw, int sign) {
  const int n = ws.n;
  const T* twr = tw.wr.data();
  const T* twi = tw.wi.data();
  const T flip = sign < 0 ? T(1) : T(-1);  // the inverse conjugates the twiddles
  int src = 0, stride = 1, len = n;
  for (; len >= 4; len >>= 2, stride <<= 2, src ^= 1) {
    const T* __restrict sr = ws.zr[src];
    const T* __restrict si = ws.zi[src];
    T* __restrict dr = ws.zr[src ^ 1];
    T* __restrict di = ws.zi[src ^ 1];
    const int m = len >> 2, step = n / len;
    for (int p = 0; p < m; ++p) {
      const T w1r = twr[p * step], w1i = flip * twi[p * step];
      const T w2r = twr[2 * p * step], w2i = flip * twi[2 * p * step];
      const T w3r = twr[3 * p * step], w3i = flip * twi[3 * p * step];
      for (int q = 0; q < stride; ++q) {
        const size_t a = size_t(q + stride * p) * W, b = a + size_t(stride) * m * W;
        const size_t c = b + size_t(stride) * m * W, d = c + size_t(stride) * m * W;
        const size_t o0 = size_t(q + stride * 4 * p) * W, o1 = o0 + size_t(stride) * W;
        const size_t o2 = o1 + size_t(stride) * W, o3 = o2 + size_t(stride) * W;
#pragma GCC ivdep
        for (int l = 0; l < W; ++l) {
          const T apcr = sr[a + l] + sr[c + l], apci = si[a + l] + si[c + l];
          const T amcr = sr[a + l] - sr[c + l], amci = si[a + l] - si[c + l];
          const T bpdr = sr[b + l] + sr[d + l], bpdi = si[b + l] + si[d + l];
          const T bmdr = sr[b + l] - sr[d + l], bmdi = si[b + l] - si[d + l];
          // -i (b - d) forward, +i (b - d) inverse
          const T jr = sign < 0 ? bmdi : -bmdi, ji = sign < 0 ? -bmdr : bmdr;
          dr[o0 + l] = apcr + bpdr, di[o0 + l] = apci + bpdi;
          const T t1r = amcr + jr, t1i = amci + ji;
          dr[o1 + l] = t1r * w1r - t1i * w1i, di[o1 + l] = t1r * w1i + t1i * w1r;
          const T t2r = apcr - bpdr, t2i = apci - bpdi;
          dr[o2 + l] = t2r * w2r - t2i * w2i, di[o2 + l] = t2r * w2i + t2i * w2r;
          const T t3r = amcr - jr, t3i = amci - ji;
          dr[o3 + l] = t3r * w3r - t3i * w3i, di[o3 + l] = t3r * w3i + t3i * w3r;
        }
      }
    }
  }
  if (len == 2) {  // the last pass, radix 2: its twiddles are all 1
    const T* __restrict sr = ws.zr[src];
    const T* __restrict si = ws.zi[src];
    T* __restrict dr = ws.zr[src ^ 1];
    T* __restrict di = ws.zi[src ^ 1];
    for (int q = 0; q < stride; ++q) {
      const size_t a = size_t(q) * W, b = size_t(q + stride) * W;
#pragma GCC ivdep
      for (int l = 0; l < W; ++l) {
        const T xr = sr[a + l], xi = si[a + l], yr = sr[b + l], yi = si[b + l];
        dr[a + l] = xr + yr, di[a + l] = xi + yi, dr[b + l] = xr - yr, di[b + l] = xi - yi;
      }
    }
    src ^= 1;
  }
  return src;
}

// Spectrum (vr, vi) <- rfft of the strip's signal: rows < `rows` of src (row stride D), lanes < nl.
template <typename T, int W>
void forward_spectrum(Workspace<T, W>& ws, const Twiddles<T>& tw, const T* src, int rows, int D,
                      int nl) {
  const int n = ws.n;
  for (int j = 0; j < n; ++j) {  // packed into (zr[0], zi[0]), which the FFT then reads
    const int r0 = 2 * j, r1 = 2 * j + 1;
    T* er = ws.zr[0] + size_t(j) * W;
    T* ei = ws.zi[0] + size_t(j) * W;
    if (nl == W && r1 + AHEAD < rows) {
      prefetch_row<T, W>(src + size_t(r0 + AHEAD) * D, 0);
      prefetch_row<T, W>(src + size_t(r1 + AHEAD) * D, 0);
    }
    if (nl == W && r1 < rows) {
      std::memcpy(er, src + size_t(r0) * D, sizeof(T) * W);
      std::memcpy(ei, src + size_t(r1) * D, sizeof(T) * W);
      continue;
    }
    for (int l = 0; l < W; ++l) {
      er[l] = (l < nl && r0 < rows) ? src[size_t(r0) * D + l] : T(0);
      ei[l] = (l < nl && r1 < rows) ? src[size_t(r1) * D + l] : T(0);
    }
  }
  const int z = fft(ws, tw, -1);
  const T* __restrict Zr = ws.zr[z];
  const T* __restrict Zi = ws.zi[z];
  T* __restrict vr = ws.vr;
  T* __restrict vi = ws.vi;
  for (int k = 0; k <= n; ++k) {
    const T* pr = Zr + size_t(k % n) * W;
    const T* pi = Zi + size_t(k % n) * W;
    const T* qr = Zr + size_t((n - k) % n) * W;
    const T* qi = Zi + size_t((n - k) % n) * W;
    const T hr = tw.hr[k], hi = tw.hi[k];
    for (int l = 0; l < W; ++l) {
      const T er = T(0.5) * (pr[l] + qr[l]), ei = T(0.5) * (pi[l] - qi[l]);
      const T our = T(0.5) * (pi[l] + qi[l]), oui = T(0.5) * (qr[l] - pr[l]);  // O
      vr[size_t(k) * W + l] = er + our * hr - oui * hi;
      vi[size_t(k) * W + l] = ei + our * hi + oui * hr;
    }
  }
}

// dst rows < `rows` (row stride D, lanes < nl) <- irfft of the spectrum (ur, ui), k = 0..n.
template <typename T, int W>
void inverse_to(Workspace<T, W>& ws, const Twiddles<T>& tw, const T* ur, const T* ui, T* dst,
                int rows, int D, int nl) {
  const int n = ws.n;
  T* zr = ws.zr[0];  // packed here, then transformed (the FFT's own pointers alias these)
  T* zi = ws.zi[0];
  for (int k = 0; k < n; ++k) {
    const T* pr = ur + size_t(k) * W;
    const T* pi = ui + size_t(k) * W;
    const T* qr = ur + size_t(n - k) * W;
    const T* qi = ui + size_t(n - k) * W;
    const T hr = tw.hr[k], hi = -tw.hi[k];  // exp(+2 pi i k / N)
    const bool edge = k == 0;               // X[0] and X[n]: their imaginary parts are ignored
    for (int l = 0; l < W; ++l) {
      const T p_i = edge ? T(0) : pi[l], q_i = edge ? T(0) : qi[l];
      const T er = T(0.5) * (pr[l] + qr[l]), ei = T(0.5) * (p_i - q_i);
      const T dr = T(0.5) * (pr[l] - qr[l]), di = T(0.5) * (p_i + q_i);
      const T our = dr * hr - di * hi, oui = dr * hi + di * hr;
      zr[size_t(k) * W + l] = er - oui, zi[size_t(k) * W + l] = ei + our;  // E + i O
    }
  }
  const int z = fft(ws, tw, +1);
  const T* __restrict Zr = ws.zr[z];
  const T* __restrict Zi = ws.zi[z];
  const T scale = T(1) / T(n);
  for (int j = 0; j < n; ++j) {
    const int r0 = 2 * j, r1 = 2 * j + 1;
    if (nl == W && r1 + AHEAD < rows) {
      prefetch_row<T, W>(dst + size_t(r0 + AHEAD) * D, 1);
      prefetch_row<T, W>(dst + size_t(r1 + AHEAD) * D, 1);
    }
    if (r0 < rows) {
      T* out = dst + size_t(r0) * D;
      for (int l = 0; l < nl; ++l) out[l] = Zr[size_t(j) * W + l] * scale;
    }
    if (r1 < rows) {
      T* out = dst + size_t(r1) * D;
      for (int l = 0; l < nl; ++l) out[l] = Zi[size_t(j) * W + l] * scale;
    }
  }
}

// dst (interleaved complex, row stride D) <- (vr, vi) for k = 0..n, lanes < nl.
template <typename T, int W>
void store_spectrum(const Workspace<T, W>& ws, T* dst, int D, int nl) {
  for (int k = 0; k <= ws.n; ++k) {
    T* out = dst + size_t(k) * D * 2;
    if (nl == W && k + AHEAD <= ws.n) prefetch_row<T, 2 * W>(out + size_t(AHEAD) * D * 2, 1);
    for (int l = 0; l < nl; ++l) {
      out[2 * l] = ws.vr[size_t(k) * W + l], out[2 * l + 1] = ws.vi[size_t(k) * W + l];
    }
  }
}

// (ur, ui) (+)= (vr, vi) * m, m read from interleaved complex src (row stride D), conjugated on
// request; the strip's spectrum v conjugated on request too. u may be v. Lanes >= nl are left
// as they are (finite values of an earlier strip or zeros; lanes never mix, and no lane >= nl
// is ever stored).
template <typename T, int W>
void multiply(const T* vr, const T* vi, bool conj_v, const T* src, int D, int nl, bool conj_m,
              bool accumulate, int n, T* ur, T* ui) {
  const T sv = conj_v ? T(-1) : T(1), sm = conj_m ? T(-1) : T(1);
  for (int k = 0; k <= n; ++k) {
    const T* m = src + size_t(k) * D * 2;
    if (nl == W && k + AHEAD <= n) prefetch_row<T, 2 * W>(m + size_t(AHEAD) * D * 2, 0);
    const size_t o = size_t(k) * W;
    if (nl == W) {
      for (int l = 0; l < W; ++l) {
        const T ar = vr[o + l], ai = sv * vi[o + l], mr = m[2 * l], mi = sm * m[2 * l + 1];
        const T pr = ar * mr - ai * mi, pi = ar * mi + ai * mr;
        ur[o + l] = accumulate ? ur[o + l] + pr : pr, ui[o + l] = accumulate ? ui[o + l] + pi : pi;
      }
    } else {
      for (int l = 0; l < nl; ++l) {
        const T ar = vr[o + l], ai = sv * vi[o + l], mr = m[2 * l], mi = sm * m[2 * l + 1];
        const T pr = ar * mr - ai * mi, pi = ar * mi + ai * mr;
        ur[o + l] = accumulate ? ur[o + l] + pr : pr, ui[o + l] = accumulate ? ui[o + l] + pi : pi;
      }
    }
  }
}

// Runs body(item, workspace) for every item on up to `threads` OpenMP threads. Returns 0, or 1
// when a thread could not allocate its workspace (nothing may throw out of the parallel region).
template <typename T, int W, typename Body>
int for_each_strip(int items, int threads, int n, Body body) {
  threads = std::max(1, std::min(threads, items));
  int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
  {
    Workspace<T, W> ws(n);
    failed = ws.ok ? 0 : 1;
#pragma omp for schedule(static)
    for (int item = 0; item < items; ++item) {
      if (ws.ok) body(item, ws);
    }
  }
  return failed;
}

template <typename T, int W>
int rfft(const T* x, int B, int L, int D, int N, T* out, int threads) {
  const int n = N / 2, F = n + 1, strips = (D + W - 1) / W;
  const Twiddles<T>& tw = twiddles<T>(N);
  return for_each_strip<T, W>(B * strips, threads, n, [&](int item, Workspace<T, W>& ws) {
    const int b = item / strips, c = item % strips * W, nl = std::min(W, D - c);
    forward_spectrum(ws, tw, x + size_t(b) * L * D + c, L, D, nl);
    store_spectrum(ws, out + (size_t(b) * F * D + c) * 2, D, nl);
  });
}

template <typename T, int W>
int forward(const T* x, int B, int L, int D, const T* K, int BK, int correlate, int N, T* y,
             int out_len, T* X, int threads) {
  const int n = N / 2, F = n + 1, strips = (D + W - 1) / W;
  const Twiddles<T>& tw = twiddles<T>(N);
  return for_each_strip<T, W>(B * strips, threads, n, [&](int item, Workspace<T, W>& ws) {
    const int b = item / strips, c = item % strips * W, nl = std::min(W, D - c);
    forward_spectrum(ws, tw, x + size_t(b) * L * D + c, L, D, nl);
    if (X) store_spectrum(ws, X + (size_t(b) * F * D + c) * 2, D, nl);
    const T* m = K + (size_t(BK == 1 ? 0 : b) * F * D + c) * 2;
    multiply<T, W>(ws.vr, ws.vi, false, m, D, nl, correlate, false, n, ws.ar, ws.ai);
    inverse_to(ws, tw, ws.ar, ws.ai, y + size_t(b) * out_len * D + c, out_len, D, nl);
  });
}

template <typename T, int W>
int backward(const T* g, int B, int out_len, int D, const T* K, int BK, int correlate, int N,
              T* gx, int L, const T* X, T* gk, int taps, int threads) {
  const int n = N / 2, F = n + 1, strips = (D + W - 1) / W;
  const Twiddles<T>& tw = twiddles<T>(N);
  const bool shared = gk && BK == 1;  // one kernel: its gradient sums over the batch, per strip
  auto sequence = [&](int b, int c, int nl, Workspace<T, W>& ws, bool accumulate) {
    forward_spectrum(ws, tw, g + size_t(b) * out_len * D + c, out_len, D, nl);  // G
    if (gk) {  // (ar, ai) (+)= conj X_b G_b, or X_b conj G_b when correlating
      const T* xb = X + (size_t(b) * F * D + c) * 2;
      multiply<T, W>(ws.vr, ws.vi, correlate, xb, D, nl, !correlate, accumulate, n, ws.ar, ws.ai);
    }
    if (gx) {  // G * conj(M), written over G
      const T* m = K + (size_t(BK == 1 ? 0 : b) * F * D + c) * 2;
      multiply<T, W>(ws.vr, ws.vi, false, m, D, nl, !correlate, false, n, ws.vr, ws.vi);
      inverse_to(ws, tw, ws.vr, ws.vi, gx + size_t(b) * L * D + c, L, D, nl);
    }
  };
  if (shared) {  // parallel over strips only: the batch sum runs in order, so results do not
                 // depend on the thread count (and D/W strips bound the threads used)
    return for_each_strip<T, W>(strips, threads, n, [&](int item, Workspace<T, W>& ws) {
      const int c = item * W, nl = std::min(W, D - c);
      for (int b = 0; b < B; ++b) sequence(b, c, nl, ws, b > 0);
      inverse_to(ws, tw, ws.ar, ws.ai, gk + c, taps, D, nl);
    });
  }
  return for_each_strip<T, W>(B * strips, threads, n, [&](int item, Workspace<T, W>& ws) {
    const int b = item / strips, c = item % strips * W, nl = std::min(W, D - c);
    sequence(b, c, nl, ws, false);
    if (gk) inverse_to(ws, tw, ws.ar, ws.ai, gk + size_t(b) * taps * D + c, taps, D, nl);
  });
}

// Nothing may throw across the C boundary: a failed allocation (the twiddle tables, a workspace)
// becomes status 1, which the caller raises as MemoryError; nothing else here throws.
template <typename F>
int guarded(F f) {
  try {
    return f();
  } catch (...) {
    return 1;
  }
}

}  // namespace

// W: channels per strip, 128 bytes of them (two cache lines, two AVX-512 registers): measured
// against 64 and 32 bytes with `globalconv bench op`.
extern "C" {
int gc_rfft_f32(const float* x, int B, int L, int D, int N, float* out, int threads) {
  return guarded([&] { return rfft<float, 32>(x, B, L, D, N, out, threads); });
}
int gc_rfft_f64(const double* x, int B, int L, int D, int N, double* out, int threads) {
  return guarded([&] { return rfft<double, 16>(x, B, L, D, N, out, threads); });
}
int gc_forward_f32(const float* x, int B, int L, int D, const float* K, int BK, int correlate,
                   int N, float* y, int out_len, float* X, int threads) {
  return guarded([&] {
    return forward<float, 32>(x, B, L, D, K, BK, correlate, N, y, out_len, X, threads);
  });
}
int gc_forward_f64(const double* x, int B, int L, int D, const double* K, int BK, int correlate,
                   int N, double* y, int out_len, double* X, int threads) {
  return guarded([&] {
    return forward<double, 16>(x, B, L, D, K, BK, correlate, N, y, out_len, X, threads);
  });
}
int gc_backward_f32(const float* g, int B, int out_len, int D, const float* K, int BK,
                    int correlate, int N, float* gx, int L, const float* X, float* gk, int taps,
                    int threads) {
  return guarded([&] {
    return backward<float, 32>(g, B, out_len, D, K, BK, correlate, N, gx, L, X, gk, taps, threads);
  });
}
int gc_backward_f64(const double* g, int B, int out_len, int D, const double* K, int BK,
                    int correlate, int N, double* gx, int L, const double* X, double* gk,
                    int taps, int threads) {
  return guarded([&] {
    return backward<double, 16>(g, B, out_len, D, K, BK, correlate, N, gx, L, X, gk, taps,
                                threads);
  });
}
}
