#pragma OPENCL FP_CONTRACT OFF
// Matrix-vector products. They are memory-bound: the aim is to stream a once with 16-wide loads, and to give
// each work-item tens of kilobytes so that PoCL's per-work-group cost vanishes. The order of every sum is the one
// docs/KERNELS.md fixes: DOT16 for a·x, fixed 4096-row chunks added in order for aᵀ·x.

// The row chunk of the transposed product: a constant of the algorithm, never derived from the device.
#define MATVEC_T_CHUNK 4096

// DOT16's fixed tree: s[i] + s[i+8], then + 4, + 2, + 1.
float hsum16(float16 v)
{
    float8 s8 = v.lo + v.hi;
    float4 s4 = s8.lo + s8.hi;
    float2 s2 = s4.lo + s4.hi;
    return s2.x + s2.y;
}

// y[r] = DOT16(a[r,:], x) for the rowsPerItem rows of this work-item.
kernel void matvec(global const float* restrict a, global const float* restrict x, global float* restrict y,
                   int rows, int cols, int rowsPerItem)
{
    int r0 = get_global_id(0) * rowsPerItem;
    int r1 = min(r0 + rowsPerItem, rows);
    for (int r = r0; r < r1; r++)
    {
        global const float* row = a + (size_t)r * cols;
        float16 acc = 0.0f;
        int j = 0;
        for (; j + 16 <= cols; j += 16)
            acc = fma(vload16(0, row + j), vload16(0, x + j), acc);
        float s = hsum16(acc);
        for (; j < cols; j++)
            s = fma(row[j], x[j], s);
        y[r] = s;
    }
}

// partial[chunk, j] = the fma chain over the chunk's rows r (in order, from +0) of x[r]·a[r,j], for the 32 columns
// of global id 0 (fewer in the last group) and the rows of chunk = global id 1. Two float16 chains per work-item
// read whole cache lines of each row and cover each other's fma latency. matvec_t_sum then adds the chunks:
// splitting the rows gives every core work even when a has few columns.
kernel void matvec_t_partial(global const float* restrict a, global const float* restrict x, global float* restrict partial,
                             int rows, int cols)
{
    int j0 = get_global_id(0) * 32;
    int chunk = get_global_id(1);
    int r0 = chunk * MATVEC_T_CHUNK;
    int r1 = min(r0 + MATVEC_T_CHUNK, rows);
    global float* out = partial + (size_t)chunk * cols;
    if (j0 + 32 <= cols)
    {
        float16 acc0 = 0.0f, acc1 = 0.0f;
        for (int r = r0; r < r1; r++)
        {
            global const float* row = a + (size_t)r * cols + j0;
            float16 xr = (float16)x[r];
            acc0 = fma(xr, vload16(0, row), acc0);
            acc1 = fma(xr, vload16(1, row), acc1);
        }
        vstore16(acc0, 0, out + j0);
        vstore16(acc1, 1, out + j0);
        return;
    }
    int j = j0;
    if (j + 16 <= cols)
    {
        float16 acc = 0.0f;
        for (int r = r0; r < r1; r++)
            acc = fma((float16)x[r], vload16(0, a + (size_t)r * cols + j), acc);
        vstore16(acc, 0, out + j);
        j += 16;
    }
    for (; j < cols; j++)
    {
        float s = 0.0f;
        for (int r = r0; r < r1; r++)
            s = fma(a[(size_t)r * cols + j], x[r], s);
        out[j] = s;
    }
}

// y[j] = partial[0, j] + partial[1, j] + ... in chunk order (starting from the first partial, not from 0, which
// would turn a -0 into +0); one work-item per 16 columns.
kernel void matvec_t_sum(global const float* restrict partial, global float* restrict y, int chunks, int cols)
{
    int j0 = get_global_id(0) * 16;
    int j1 = min(j0 + 16, cols);
    for (int j = j0; j < j1; j++)
    {
        float s = partial[j];
        for (int c = 1; c < chunks; c++)
            s = s + partial[(size_t)c * cols + j];
        y[j] = s;
    }
}
