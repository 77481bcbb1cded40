#pragma OPENCL FP_CONTRACT OFF
// C = A·B on packed operands. Packing gives the inner loop two contiguous, zero-padded streams: no edge
// checks, no cache-set aliasing from large power-of-two row strides, and one layout for B and Bᵀ.
// One work-item owns a GEMM_MB·GEMM_MR x GEMM_NR block of C and walks k in GEMM_KC steps, so the
// GEMM_KC x GEMM_NR slice of B stays in L1 while it is reused by every row panel of the block.
// (Local memory does not help on a CPU device; registers and vector width do.)
// Every element of C is the fma chain over k in ascending order from +0 (docs/KERNELS.md): a later k step loads
// the partial sum back and continues it, never adds block sums.

#ifndef GEMM_MR
#define GEMM_MR 8
#endif
#ifndef GEMM_NR
#define GEMM_NR 16
#endif
#ifndef GEMM_MB
#define GEMM_MB 8
#endif
#ifndef GEMM_KC
#define GEMM_KC 256
#endif
#define PACK_CHUNK 64

// dst[(p·depth + kk)·width + j] = src[(p·width + j)·stridePanel + kk·strideDepth], zero past count.
// One work-item packs PACK_CHUNK steps of k for one panel.
kernel void pack_panels(global const float* restrict src, global float* restrict dst, int count, int depth,
                        int width, long stridePanel, long strideDepth)
{
    int p = get_global_id(1);
    int k0 = get_global_id(0) * PACK_CHUNK;
    int k1 = min(k0 + PACK_CHUNK, depth);
    int valid = min(width, count - p * width);
    global float* out = dst + ((size_t)p * depth + k0) * width;
    global const float* in = src + (size_t)p * width * stridePanel;
    for (int kk = k0; kk < k1; kk++)
    {
        int j = 0;
        for (; j < valid; j++)
            *out++ = in[j * stridePanel + kk * strideDepth];
        for (; j < width; j++)
            *out++ = 0.0f;
    }
}

#if GEMM_NR == 16
#define ACC_DECL(r) float16 c##r;
#define ACC_ZERO(r) c##r = 0.0f;
#define ACC_LOAD(r) c##r = vload16(0, cp + r * ldc);
#define ACC_STORE(r) vstore16(c##r, 0, cp + r * ldc);
#define ACC_FMA(r) c##r = fma((float16)a[r], b0, c##r);
#define LOAD_B float16 b0 = vload16(0, b);
#elif GEMM_NR == 32
#define ACC_DECL(r) float16 c##r, d##r;
#define ACC_ZERO(r) c##r = 0.0f; d##r = 0.0f;
#define ACC_LOAD(r) c##r = vload16(0, cp + r * ldc); d##r = vload16(0, cp + r * ldc + 16);
#define ACC_STORE(r) vstore16(c##r, 0, cp + r * ldc); vstore16(d##r, 0, cp + r * ldc + 16);
#define ACC_FMA(r) { float16 ar = (float16)a[r]; c##r = fma(ar, b0, c##r); d##r = fma(ar, b1, d##r); }
#define LOAD_B float16 b0 = vload16(0, b); float16 b1 = vload16(0, b + 16);
#endif

#if GEMM_MR == 8
#define ALL_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#elif GEMM_MR == 4
#define ALL_ROWS(X) X(0) X(1) X(2) X(3)
#elif GEMM_MR == 6
#define ALL_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#endif

// ap: row panels of A packed [panel][depth][GEMM_MR]; bp: column panels of B packed [panel][depth][GEMM_NR];
// c: rowPanels·GEMM_MR x ldc, ldc a multiple of GEMM_NR. Global id 0 is the column panel (offset by
// firstColumnPanel), id 1 the row block (offset by firstRowBlock). Steps of k in [kBegin, kEnd) are
// accumulated into c, which is overwritten when kBegin is 0.
kernel void gemm_packed(global const float* restrict ap, global const float* restrict bp, global float* restrict c,
                        int depth, int ldc, int rowPanels, int firstColumnPanel, int firstRowBlock, int kBegin, int kEnd)
{
    int jp = firstColumnPanel + get_global_id(0);
    int ip0 = (firstRowBlock + get_global_id(1)) * GEMM_MB;
    int ip1 = min(ip0 + GEMM_MB, rowPanels);
    global const float* bpanel = bp + (size_t)jp * depth * GEMM_NR;
    for (int k0 = kBegin; k0 < kEnd; k0 += GEMM_KC)
    {
        int k1 = min(k0 + GEMM_KC, kEnd);
        for (int ip = ip0; ip < ip1; ip++)
        {
            global const float* a = ap + ((size_t)ip * depth + k0) * GEMM_MR;
            global const float* b = bpanel + (size_t)k0 * GEMM_NR;
            global float* cp = c + (size_t)ip * GEMM_MR * ldc + (size_t)jp * GEMM_NR;
            ALL_ROWS(ACC_DECL)
            if (k0 == 0)
            {
                ALL_ROWS(ACC_ZERO)
            }
            else
            {
                ALL_ROWS(ACC_LOAD)
            }
            for (int kk = k0; kk < k1; kk++)
            {
                LOAD_B
                ALL_ROWS(ACC_FMA)
                a += GEMM_MR;
                b += GEMM_NR;
            }
            ALL_ROWS(ACC_STORE)
        }
    }
}
