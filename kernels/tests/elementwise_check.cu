// elementwise_check.cu: the small activation ops (dsk_silu_and_mul, dsk_copy_columns, dsk_elementwise ADD / SCALE,
// dsk_softmax) on a GPU against a CPU reference, plus an optional timing (--bench).
//
// Every case fills its buffers' padding (row padding, the elements before a misaligned start, a guard after the last
// row) with NaN bytes, poisons the outputs the same way, runs the op, then checks
//   - CopyColumns, Add, Scale bit for bit (one fp32 operation, one rounding to the dtype: the CPU does the same);
//   - SiluAndMul and Softmax against double precision from the same rounded inputs: within 1e-5 relative (F32) or one
//     bf16 rounding (2^-8 relative) plus that (BF16); Softmax's NaN row all NaN and the other rows unaffected;
//   - every byte outside the output view unchanged, so nothing is written out of bounds (and NaN padding read by mistake
//     would show in the outputs).
// F32 and BF16; odd widths and lengths; starts one element in (misaligned: the scalar paths) and row strides that are not
// whole 16-byte vectors; every in-place form the header allows (z = x, z = y, softmax y = x).
// Exits 77 (ctest: skipped) when no CUDA device is present.
//
//   dsk_elementwise_check            run the checks (--quick: the small shapes only, for the host emulation)
//   dsk_elementwise_check --bench    also time DeepSeek shapes against a device-to-device copy of the same bytes
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "deepseek_kernels.h"
#include "check_common.cuh"

namespace {

using namespace check;


// A device copy of a HostBuf.
struct Dev {
    DevBuf buf;
    explicit Dev(const HostBuf& h) : buf(h.bytes.size()) { buf.upload(h.bytes.data()); }
    uint8_t* at(size_t element, int32_t dt) { return static_cast<uint8_t*>(buf.d) + element * dtype_bytes(dt); }
    HostBuf download(int32_t dt, size_t n) const {
        HostBuf h(dt, n);
        buf.download(h.bytes.data());
        return h;
    }
};

constexpr size_t kGuard = 8;  // NaN elements after every buffer's last row

int g_cases = 0;
int g_failed = 0;

// Collects a case's failures, printing the first few.
struct Verdict {
    std::string name;
    bool ok = true;
    int reported = 0;
    explicit Verdict(std::string n) : name(std::move(n)) { ++g_cases; }
    void fail(const char* what, long long i, long long j, double got, double want) {
        ok = false;
        if (reported++ < 5) {
            std::fprintf(stderr, "FAIL [%s]: %s at [%lld, %lld]: got %.9g want %.9g\n", name.c_str(), what, i, j, got, want);
        }
    }
    void status(dsk_status st) {
        if (st != DSK_SUCCESS) {
            ok = false;
            std::fprintf(stderr, "FAIL [%s]: status %d: %s\n", name.c_str(), (int)st, dsk_last_error_message());
        }
    }
    ~Verdict() {
        if (!ok) ++g_failed;
    }
};

// |got - want| within one rounding to the dtype (bf16: 2^-8 relative) plus fp32's own error; NaN never passes.
bool close(double got, double want, int32_t dt, double f32_rel, double abs_tol) {
    const double rel = dt == DSK_DTYPE_F32 ? f32_rel : std::ldexp(1.0, -8) + f32_rel;
    return std::fabs(got - want) <= rel * std::fabs(want) + abs_tol;
}

void sync(cudaStream_t stream) { CUDA_OK(stream != nullptr ? cudaStreamSynchronize(stream) : cudaDeviceSynchronize()); }

// ---------------------------------------------------------------------------------------------------------
// SiluAndMul

struct SiluCase {
    int32_t dt;
    int64_t rows, inter;
    int64_t x_pad, y_pad;  // row stride = width + pad
    int64_t offset;        // elements before both views' starts
};

void run_silu(const SiluCase& c, cudaStream_t stream) {
    char name[160];
    std::snprintf(name, sizeof name, "silu_and_mul %s rows %lld inter %lld x_pad %lld y_pad %lld offset %lld", dtype_str(c.dt),
                  (long long)c.rows, (long long)c.inter, (long long)c.x_pad, (long long)c.y_pad, (long long)c.offset);
    Verdict v(name);
    const int64_t xs = 2 * c.inter + c.x_pad, ys = c.inter + c.y_pad;
    HostBuf x(c.dt, (size_t)(c.offset + c.rows * xs) + kGuard), y0(c.dt, (size_t)(c.offset + c.rows * ys) + kGuard);
    for (int64_t r = 0; r < c.rows; ++r) {
        for (int64_t i = 0; i < 2 * c.inter; ++i) x.set((size_t)(c.offset + r * xs + i), uniform(-12.0f, 12.0f));
    }
    Dev dx(x), dy(y0);
    sync(nullptr);
    dsk_silu_and_mul_params p;
    std::memset(&p, 0, sizeof p);
    p.x = dx.at((size_t)c.offset, c.dt);
    p.y = dy.at((size_t)c.offset, c.dt);
    p.rows = c.rows;
    p.intermediate = c.inter;
    p.x_row_stride = xs;
    p.y_row_stride = ys;
    p.dtype = c.dt;
    p.stream = stream;
    v.status(dsk_silu_and_mul(&p));
    sync(stream);
    const HostBuf y = dy.download(c.dt, y0.size());
    for (size_t k = 0; k < y.size(); ++k) {
        const int64_t rel = (int64_t)k - c.offset, r = rel / ys, i = rel % ys;
        if (rel >= 0 && r < c.rows && i < c.inter) {
            const double g = x.get((size_t)(c.offset + r * xs + i)), u = x.get((size_t)(c.offset + r * xs + c.inter + i));
            const double want = g / (1.0 + std::exp(-g)) * u;
            if (!close(y.get(k), want, c.dt, 1e-5, 1e-30)) v.fail("y", r, i, y.get(k), want);
        } else if (!y.same_bits(y0, k)) {
            v.fail("y outside the view", r, i, y.get(k), y0.get(k));
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// CopyColumns

struct CopyCase {
    int32_t dt;
    int64_t rows, width;
    int64_t x_cols, x_off, y_cols, y_off;  // row strides and column offsets
    int64_t offset;                        // elements before both buffers' row 0
};

void run_copy(const CopyCase& c, cudaStream_t stream) {
    char name[200];
    std::snprintf(name, sizeof name, "copy_columns %s rows %lld width %lld x [%lld @ %lld] y [%lld @ %lld] offset %lld",
                  dtype_str(c.dt), (long long)c.rows, (long long)c.width, (long long)c.x_cols, (long long)c.x_off,
                  (long long)c.y_cols, (long long)c.y_off, (long long)c.offset);
    Verdict v(name);
    HostBuf x(c.dt, (size_t)(c.offset + c.rows * c.x_cols) + kGuard), y0(c.dt, (size_t)(c.offset + c.rows * c.y_cols) + kGuard);
    for (size_t k = 0; k < x.size(); ++k) x.set(k, uniform(-4.0f, 4.0f));  // all of x: only the block may be copied
    for (size_t k = (size_t)c.offset; k < y0.size() - kGuard; ++k) y0.set(k, -100.0f - (float)(k % 1000));  // kept values
    Dev dx(x), dy(y0);
    sync(nullptr);
    dsk_copy_columns_params p;
    std::memset(&p, 0, sizeof p);
    p.x = dx.at((size_t)c.offset, c.dt);
    p.y = dy.at((size_t)c.offset, c.dt);
    p.rows = c.rows;
    p.width = c.width;
    p.x_offset = c.x_off;
    p.y_offset = c.y_off;
    p.x_row_stride = c.x_cols;
    p.y_row_stride = c.y_cols;
    p.dtype = c.dt;
    p.stream = stream;
    v.status(dsk_copy_columns(&p));
    sync(stream);
    const HostBuf y = dy.download(c.dt, y0.size());
    for (size_t k = 0; k < y.size(); ++k) {
        const int64_t rel = (int64_t)k - c.offset, r = rel / c.y_cols, col = rel % c.y_cols - c.y_off;
        if (rel >= 0 && r < c.rows && col >= 0 && col < c.width) {
            const size_t from = (size_t)(c.offset + r * c.x_cols + c.x_off + col);
            if (std::memcmp(&y.bytes[k * dtype_bytes(c.dt)], &x.bytes[from * dtype_bytes(c.dt)], dtype_bytes(c.dt)) != 0) {
                v.fail("y", r, col, y.get(k), x.get(from));
            }
        } else if (!y.same_bits(y0, k)) {
            v.fail("y outside the block", r, col, y.get(k), y0.get(k));
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Elementwise ADD / SCALE

enum EwAlias { kApart, kZisX, kZisY };

struct EwCase {
    int32_t dt;
    int32_t op;  // dsk_elementwise_op
    int64_t n;
    int64_t offset;  // elements before every view's start
    EwAlias alias;
    bool nan;        // a NaN in x at n / 2
};

void run_elementwise(const EwCase& c, cudaStream_t stream) {
    const bool add = c.op == DSK_ELEMENTWISE_ADD;
    const float factor = 0.3f;
    char name[160];
    std::snprintf(name, sizeof name, "elementwise %s %s n %lld offset %lld %s%s", add ? "add" : "scale", dtype_str(c.dt),
                  (long long)c.n, (long long)c.offset, c.alias == kApart ? "apart" : c.alias == kZisX ? "z=x" : "z=y",
                  c.nan ? " nan" : "");
    Verdict v(name);
    const size_t total = (size_t)(c.offset + c.n) + kGuard;
    HostBuf x(c.dt, total), y(c.dt, total), z0(c.dt, total);
    for (int64_t i = 0; i < c.n; ++i) {
        x.set((size_t)(c.offset + i), uniform(-8.0f, 8.0f));
        y.set((size_t)(c.offset + i), uniform(-8.0f, 8.0f));
    }
    if (c.nan) x.set((size_t)(c.offset + c.n / 2), NAN);
    Dev dx(x), dy(y), dz(z0);
    sync(nullptr);
    Dev* out = c.alias == kZisX ? &dx : c.alias == kZisY ? &dy : &dz;
    const HostBuf& out0 = c.alias == kZisX ? x : c.alias == kZisY ? y : z0;
    dsk_elementwise_params p;
    std::memset(&p, 0, sizeof p);
    p.x = dx.at((size_t)c.offset, c.dt);
    p.y = add ? dy.at((size_t)c.offset, c.dt) : nullptr;
    p.z = out->at((size_t)c.offset, c.dt);
    p.n = c.n;
    p.factor = factor;
    p.op = c.op;
    p.dtype = c.dt;
    p.stream = stream;
    v.status(dsk_elementwise(&p));
    sync(stream);
    const HostBuf z = out->download(c.dt, total);
    for (size_t k = 0; k < total; ++k) {
        const int64_t i = (int64_t)k - c.offset;
        if (i >= 0 && i < c.n) {
            const float want = z.round(add ? x.get(k) + y.get(k) : x.get(k) * factor);  // one fp32 op, one rounding
            const float got = z.get(k);
            if (!(std::memcmp(&got, &want, 4) == 0 || (std::isnan(got) && std::isnan(want)))) v.fail("z", 0, i, got, want);
        } else if (!z.same_bits(out0, k)) {
            v.fail("z outside the view", 0, i, z.get(k), out0.get(k));
        }
    }
    if (c.alias != kZisY && add) {  // y untouched when it is not the output
        const HostBuf y_after = dy.download(c.dt, total);
        for (size_t k = 0; k < total; ++k) {
            if (!y_after.same_bits(y, k)) v.fail("y (an input) changed", 0, (long long)k - c.offset, y_after.get(k), y.get(k));
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Softmax

struct SoftmaxCase {
    int32_t dt;
    int64_t rows, len;
    int64_t offset;  // elements before x's (and y's) start
    bool in_place;
    bool nan_row;  // a NaN in row 1
    float scale;   // logits in [-scale, scale)
};

void run_softmax(const SoftmaxCase& c, cudaStream_t stream) {
    char name[160];
    std::snprintf(name, sizeof name, "softmax %s rows %lld len %lld offset %lld%s%s scale %g", dtype_str(c.dt), (long long)c.rows,
                  (long long)c.len, (long long)c.offset, c.in_place ? " in-place" : "", c.nan_row ? " nan-row" : "", (double)c.scale);
    Verdict v(name);
    const int64_t n = c.rows * c.len;
    const size_t total = (size_t)(c.offset + n) + kGuard;
    HostBuf x(c.dt, total), y0(c.dt, total);
    for (int64_t i = 0; i < n; ++i) x.set((size_t)(c.offset + i), uniform(-c.scale, c.scale));
    if (c.nan_row && c.rows > 1) x.set((size_t)(c.offset + c.len + c.len / 2), NAN);
    Dev dx(x), dy(y0);
    sync(nullptr);
    Dev* out = c.in_place ? &dx : &dy;
    const HostBuf& out0 = c.in_place ? x : y0;
    dsk_softmax_params p;
    std::memset(&p, 0, sizeof p);
    p.x = dx.at((size_t)c.offset, c.dt);
    p.y = out->at((size_t)c.offset, c.dt);
    p.rows = c.rows;
    p.row_length = c.len;
    p.dtype = c.dt;
    p.stream = stream;
    v.status(dsk_softmax(&p));
    sync(stream);
    const HostBuf y = out->download(c.dt, total);
    for (int64_t r = 0; r < c.rows; ++r) {
        const size_t base = (size_t)(c.offset + r * c.len);
        double mx = -INFINITY, sum = 0.0;
        bool has_nan = false;
        for (int64_t i = 0; i < c.len; ++i) {
            const double e = x.get(base + (size_t)i);
            has_nan = has_nan || std::isnan(e);
            mx = std::max(mx, e);
        }
        for (int64_t i = 0; i < c.len; ++i) sum += std::exp((double)x.get(base + (size_t)i) - mx);
        for (int64_t i = 0; i < c.len; ++i) {
            const double got = y.get(base + (size_t)i);
            if (has_nan) {
                if (!std::isnan(got)) v.fail("y (NaN row)", r, i, got, NAN);
                continue;
            }
            const double want = std::exp((double)x.get(base + (size_t)i) - mx) / sum;
            if (!close(got, want, c.dt, 1e-5, 1e-9)) v.fail("y", r, i, got, want);
        }
    }
    for (size_t k = 0; k < total; ++k) {
        const int64_t i = (int64_t)k - c.offset;
        if ((i < 0 || i >= n) && !y.same_bits(out0, k)) v.fail("y outside the view", 0, i, y.get(k), out0.get(k));
    }
    if (!c.in_place) {  // x untouched
        const HostBuf x_after = dx.download(c.dt, total);
        for (size_t k = 0; k < total; ++k) {
            if (!x_after.same_bits(x, k)) v.fail("x (the input) changed", 0, (long long)k - c.offset, x_after.get(k), x.get(k));
        }
    }
}

// ---------------------------------------------------------------------------------------------------------

void run_checks(cudaStream_t stream, bool quick) {
    const int32_t dts[2] = {DSK_DTYPE_BF16, DSK_DTYPE_F32};
    for (int32_t dt : dts) {
        // SiluAndMul: (rows, intermediate): tiny, odd, whole vectors, several column blocks; padded strides; misaligned.
        const int64_t silu_shapes[][2] = {{1, 1}, {3, 7}, {2, 64}, {5, 40}, {1, 520}, {2, 1032}};
        for (const auto& s : silu_shapes) {
            run_silu({dt, s[0], s[1], 0, 0, 0}, stream);
            run_silu({dt, s[0], s[1], 8, 16, 0}, stream);  // strides whole vectors larger
            run_silu({dt, s[0], s[1], 3, 1, 1}, stream);   // misaligned start and strides: the scalar path
        }
        if (!quick) {
            run_silu({dt, 64, 18432 / 8, 0, 0, 0}, stream);
            run_silu({dt, 70000, 8, 0, 0, 0}, stream);  // more rows than grid.y
            run_silu({dt, 3, 70000 * 8, 0, 0, 0}, stream);  // long rows: hundreds of column blocks
        }

        // CopyColumns: (rows, width, x_cols, x_off, y_cols, y_off, offset).
        const CopyCase copies[] = {
            {dt, 1, 1, 1, 0, 1, 0, 0},
            {dt, 7, 64, 576, 512, 64, 0, 0},     // k_pe out of kv_a rows
            {dt, 3, 64, 192, 128, 576, 512, 0},  // q_pe beside the absorbed query
            {dt, 4, 512, 576, 0, 512, 0, 0},     // the latent part
            {dt, 5, 20, 33, 3, 40, 17, 0},       // odd everything
            {dt, 17, 63, 129, 65, 65, 1, 0},
            {dt, 6, 8, 16, 4, 16, 8, 0},         // 16 bytes in bf16, 32 in f32, 8-byte aligned starts in bf16
            {dt, 6, 6, 10, 2, 12, 4, 1},         // misaligned
            {dt, 2, 300, 300, 0, 300, 0, 3},     // whole rows, misaligned
        };
        for (const auto& c : copies) run_copy(c, stream);
        if (!quick) {
            run_copy({dt, 70000, 4, 8, 4, 4, 0, 0}, stream);
            run_copy({dt, 2, 70000 * 8, 70000 * 8, 0, 70000 * 8, 0, 0}, stream);
        }

        // Add and Scale: n, offset, alias, NaN.
        const int64_t ns[] = {1, 7, 8, 64, 77, 1000, 1027};
        for (int32_t op : {DSK_ELEMENTWISE_ADD, DSK_ELEMENTWISE_SCALE}) {
            for (int64_t n : ns) {
                run_elementwise({dt, op, n, 0, kApart, false}, stream);
                run_elementwise({dt, op, n, 1, kApart, false}, stream);  // misaligned: the scalar path
                run_elementwise({dt, op, n, 0, kZisX, n > 2}, stream);
                if (op == DSK_ELEMENTWISE_ADD) run_elementwise({dt, op, n, 0, kZisY, false}, stream);
                if (op == DSK_ELEMENTWISE_ADD) run_elementwise({dt, op, n, 3, kZisY, false}, stream);
            }
            if (!quick) {
                run_elementwise({dt, op, 4096 * 7168 + 5, 0, kApart, false}, stream);  // more than 65535 blocks: grid-stride
                run_elementwise({dt, op, 4096 * 7168 + 5, 1, kZisX, false}, stream);
            }
        }

        // Softmax: (rows, len): tiny, odd, vectors, longer than a block's threads; in place; NaN row; large logits.
        const int64_t sm_shapes[][2] = {{1, 1}, {4, 7}, {3, 129}, {2, 1000}, {17, 32}, {3, 2056}};
        for (const auto& s : sm_shapes) {
            run_softmax({dt, s[0], s[1], 0, false, false, 3.0f}, stream);
            run_softmax({dt, s[0], s[1], 0, true, s[0] > 1, 30.0f}, stream);
            run_softmax({dt, s[0], s[1], 1, false, s[0] > 1, 30.0f}, stream);  // misaligned: the scalar path
            run_softmax({dt, s[0], s[1], 1, true, false, 3.0f}, stream);
        }
        if (!quick) {
            run_softmax({dt, 300, 256, 0, false, true, 10.0f}, stream);  // many rows: the 256-thread cap
            run_softmax({dt, 2, 129280, 0, true, false, 20.0f}, stream); // a vocabulary row
            run_softmax({dt, 300, 72, 1, true, false, 3.0f}, stream);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Benchmark: each op's median time over inputs rotated through a 512 MiB arena (an H200's L2 is 60 MB), and a
// device-to-device copy of the same number of bytes (read + written), rotated the same way, in the same run. A region
// larger than half the arena is not rotated (it is several times the L2 already).

constexpr size_t kArena = (size_t)512 << 20;

struct Arena {
    DevBuf in{kArena}, out{kArena};
    Arena() {
        fill_bf16(in.d, kArena / 2, 1.0f, 1u);
        fill_bf16(out.d, kArena / 2, 1.0f, 2u);
        CUDA_OK(cudaDeviceSynchronize());
    }
    // The i-th rotation of a region of `bytes` (256-byte aligned) in each arena.
    static size_t slot(int i, size_t bytes) {
        const size_t step = (bytes + 255) / 256 * 256;
        if (step > kArena) {
            std::fprintf(stderr, "bench: a region of %zu bytes does not fit the %zu-byte arena\n", bytes, kArena);
            std::exit(2);
        }
        const size_t count = std::max<size_t>(1, kArena / step);
        return (size_t)i % count * step;
    }
    uint8_t* in_at(int i, size_t bytes) { return static_cast<uint8_t*>(in.d) + slot(i, bytes); }
    uint8_t* out_at(int i, size_t bytes) { return static_cast<uint8_t*>(out.d) + slot(i, bytes); }
};

template <typename Fn> void bench_row(Arena& arena, const char* what, size_t read, size_t written, Fn op, cudaStream_t stream) {
    const double us = median_us([&](int i) {
        if (op(i) != DSK_SUCCESS) {
            std::fprintf(stderr, "bench %s: %s\n", what, dsk_last_error_message());
            std::exit(2);
        }
    }, stream, 50);
    // The copy moves the same bytes: (read + written) / 2 read and as many written.
    const size_t half = (read + written) / 2;
    const double copy_us = median_us([&](int i) {
        CUDA_OK(cudaMemcpyAsync(arena.out_at(i, half), arena.in_at(i, half), half, cudaMemcpyDeviceToDevice, stream));
    }, stream, 50);
    const double gbs = (double)(read + written) / us * 1e-3, copy_gbs = (double)(2 * half) / copy_us * 1e-3;
    std::printf("%-44s %10.2f %10.1f %10.1f %8.2f\n", what, us, gbs, copy_gbs, gbs / copy_gbs);
}

void run_bench(cudaStream_t stream) {
    cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    std::printf("bench on %s (bf16; GB/s = bytes read + written / median time; inputs rotated through 512 MiB)\n", prop.name);
    std::printf("%-44s %10s %10s %10s %8s\n", "op", "us", "GB/s", "copy GB/s", "x copy");
    Arena arena;
    char what[96];
    // SiluAndMul: decode and prefill, the dense MLP (18432) and an expert (2048).
    const int64_t silu[][2] = {{1, 18432}, {64, 18432}, {4096, 18432}, {4096, 2048}, {16384, 2048}};
    for (const auto& s : silu) {
        const size_t out = (size_t)(s[0] * s[1]) * 2, in = 2 * out;
        std::snprintf(what, sizeof what, "silu_and_mul rows %lld inter %lld", (long long)s[0], (long long)s[1]);
        bench_row(arena, what, in, out, [&](int i) {
            dsk_silu_and_mul_params p{};
            p.x = arena.in_at(i, in);
            p.y = arena.out_at(i, out);
            p.rows = s[0];
            p.intermediate = s[1];
            p.x_row_stride = 2 * s[1];
            p.y_row_stride = s[1];
            p.dtype = DSK_DTYPE_BF16;
            p.stream = stream;
            return dsk_silu_and_mul(&p);
        }, stream);
    }
    // CopyColumns: MLA's q_pe (64 of 192 per head into 576-wide rows) and latent (512 of 576).
    const int64_t copy[][5] = {{128, 64, 192, 128, 576}, {1024 * 128, 64, 192, 128, 576}, {4096, 512, 576, 0, 512}, {65536, 512, 576, 0, 512}};
    for (const auto& s : copy) {
        const size_t moved = (size_t)(s[0] * s[1]) * 2;
        const size_t in_span = (size_t)(s[0] * s[2]) * 2, out_span = (size_t)(s[0] * s[4]) * 2;
        std::snprintf(what, sizeof what, "copy_columns rows %lld width %lld", (long long)s[0], (long long)s[1]);
        bench_row(arena, what, moved, moved, [&](int i) {
            dsk_copy_columns_params p{};
            p.x = arena.in_at(i, in_span);
            p.y = arena.out_at(i, out_span);
            p.rows = s[0];
            p.width = s[1];
            p.x_offset = s[3];
            p.y_offset = 0;
            p.x_row_stride = s[2];
            p.y_row_stride = s[4];
            p.dtype = DSK_DTYPE_BF16;
            p.stream = stream;
            return dsk_copy_columns(&p);
        }, stream);
    }
    // Add (a residual add) and Scale over hidden 7168.
    for (int64_t rows : {1, 64, 4096}) {
        for (int32_t op : {DSK_ELEMENTWISE_ADD, DSK_ELEMENTWISE_SCALE}) {
            const size_t bytes = (size_t)(rows * 7168) * 2;
            const bool add = op == DSK_ELEMENTWISE_ADD;
            std::snprintf(what, sizeof what, "%s n %lld x 7168", add ? "add" : "scale", (long long)rows);
            bench_row(arena, what, add ? 2 * bytes : bytes, bytes, [&](int i) {
                dsk_elementwise_params p{};
                p.x = arena.in_at(i, 2 * bytes);
                p.y = add ? arena.in_at(i, 2 * bytes) + bytes : nullptr;
                p.z = arena.out_at(i, 2 * bytes);
                p.n = rows * 7168;
                p.factor = 0.5f;
                p.op = op;
                p.dtype = DSK_DTYPE_BF16;
                p.stream = stream;
                return dsk_elementwise(&p);
            }, stream);
        }
    }
    // Softmax: router-sized rows (256 experts) and vocabulary rows.
    const int64_t sm[][2] = {{4096, 256}, {65536, 256}, {1, 129280}, {64, 129280}};
    for (const auto& s : sm) {
        const size_t bytes = (size_t)(s[0] * s[1]) * 2;
        std::snprintf(what, sizeof what, "softmax rows %lld len %lld", (long long)s[0], (long long)s[1]);
        bench_row(arena, what, bytes, bytes, [&](int i) {
            dsk_softmax_params p{};
            p.x = arena.in_at(i, bytes);
            p.y = arena.out_at(i, bytes);
            p.rows = s[0];
            p.row_length = s[1];
            p.dtype = DSK_DTYPE_BF16;
            p.stream = stream;
            return dsk_softmax(&p);
        }, stream);
    }
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = false, bench = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) quick = true;
        else if (std::strcmp(argv[i], "--bench") == 0) bench = true;
        else {
            std::fprintf(stderr, "usage: %s [--quick] [--bench]\n", argv[0]);
            return 2;
        }
    }
    if (!gpu_present()) return 77;
    cudaStream_t stream;
    CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    run_checks(stream, quick);
    std::printf("elementwise_check: %d of %d cases passed%s\n", g_cases - g_failed, g_cases, quick ? " (--quick)" : "");
    if (bench) run_bench(stream);
    CUDA_OK(cudaStreamDestroy(stream));
    return g_failed == 0 ? 0 : 1;
}
