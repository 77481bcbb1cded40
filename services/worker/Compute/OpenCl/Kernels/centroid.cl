#pragma OPENCL FP_CONTRACT OFF
// labels[i] = argmin over centroids of the squared L2 distance, each distance the fma chain over the dimensions in
// order (docs/KERNELS.md); strict < keeps the lower index on ties, NaN never wins, all-NaN gives 0.
//
// Vectorised across centroids: the host packs them [block][dimension][lane], lane l of block b holding centroid
// l·blocks + b (NaN past k), so one float16 load serves 16 centroids and each lane's chain is one centroid's
// distance. Within a lane strict < keeps the earlier block (lower index); across lanes the first lane holding the
// minimum has the lowest index, since lanes hold ascending ranges.

int lowest_lane(float16 best, int16 index)
{
    float b[16];
    int ix[16];
    vstore16(best, 0, b);
    vstore16(index, 0, ix);
    float m = INFINITY;
    int r = 0;
    for (int l = 0; l < 16; l++)
    {
        if (b[l] < m)
        {
            m = b[l];
            r = ix[l];
        }
    }
    return r;
}

#define KEEP(s, best, index) { int16 less = s < best; best = select(best, s, less); index = select(index, ids, less); }

// Each work-item takes pointsPerItem points, four at a time: four independent chains cover the fma latency and
// each centroid load serves all four. Past the last point the last one is repeated and its label dropped.
kernel void nearest_centroid(global const float* restrict points, int n, int d, global const float* restrict packed,
                             int blocks, global int* restrict labels, int pointsPerItem)
{
    int i0 = get_global_id(0) * pointsPerItem;
    int i1 = min(i0 + pointsPerItem, n);
    int16 lane = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int i = i0; i < i1; i += 4)
    {
        global const float* p0 = points + (size_t)i * d;
        global const float* p1 = points + (size_t)min(i + 1, i1 - 1) * d;
        global const float* p2 = points + (size_t)min(i + 2, i1 - 1) * d;
        global const float* p3 = points + (size_t)min(i + 3, i1 - 1) * d;
        float16 best0 = INFINITY, best1 = INFINITY, best2 = INFINITY, best3 = INFINITY;
        int16 index0 = 0, index1 = 0, index2 = 0, index3 = 0;
        for (int b = 0; b < blocks; b++)
        {
            global const float* q = packed + (size_t)b * d * 16;
            float16 s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
            for (int t = 0; t < d; t++)
            {
                float16 c = vload16(t, q);
                float16 e0 = (float16)p0[t] - c;
                float16 e1 = (float16)p1[t] - c;
                float16 e2 = (float16)p2[t] - c;
                float16 e3 = (float16)p3[t] - c;
                s0 = fma(e0, e0, s0);
                s1 = fma(e1, e1, s1);
                s2 = fma(e2, e2, s2);
                s3 = fma(e3, e3, s3);
            }
            int16 ids = lane * blocks + b;
            KEEP(s0, best0, index0)
            KEEP(s1, best1, index1)
            KEEP(s2, best2, index2)
            KEEP(s3, best3, index3)
        }
        labels[i] = lowest_lane(best0, index0);
        if (i + 1 < i1)
            labels[i + 1] = lowest_lane(best1, index1);
        if (i + 2 < i1)
            labels[i + 2] = lowest_lane(best2, index2);
        if (i + 3 < i1)
            labels[i + 3] = lowest_lane(best3, index3);
    }
}
