// labels[i] = argmin over centroids of the squared L2 distance; strict < keeps the lower index on ties.

float hsum16_centroid(float16 v)
{
    float8 s8 = v.lo + v.hi;
    float4 s4 = s8.lo + s8.hi;
    float2 s2 = s4.lo + s4.hi;
    return s2.x + s2.y;
}

int nearest(global const float* restrict p, int d, global const float* restrict centroids, int k)
{
    float best = INFINITY;
    int bestIndex = 0;
    for (int c = 0; c < k; c++)
    {
        global const float* q = centroids + (size_t)c * d;
        float16 acc = 0.0f;
        int t = 0;
        for (; t + 16 <= d; t += 16)
        {
            float16 diff = vload16(0, p + t) - vload16(0, q + t);
            acc = fma(diff, diff, acc);
        }
        float s = hsum16_centroid(acc);
        for (; t < d; t++)
        {
            float diff = p[t] - q[t];
            s = fma(diff, diff, s);
        }
        if (s < best)
        {
            best = s;
            bestIndex = c;
        }
    }
    return bestIndex;
}

// Each work-item takes pointsPerItem points.
kernel void nearest_centroid(global const float* restrict points, int n, int d, global const float* restrict centroids,
                             int k, global int* restrict labels, int pointsPerItem)
{
    int i0 = get_global_id(0) * pointsPerItem;
    int i1 = min(i0 + pointsPerItem, n);
    for (int i = i0; i < i1; i++)
        labels[i] = nearest(points + (size_t)i * d, d, centroids, k);
}
