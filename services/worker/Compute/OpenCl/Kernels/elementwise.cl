#pragma OPENCL FP_CONTRACT OFF
// Element-wise primitives. A work-item takes a whole chunk or row so that PoCL's per-work-item overhead is
// amortised and the body runs on 16-wide vectors with a scalar tail. Every operation is the one docs/KERNELS.md
// prescribes: no contraction (the pragma above), no built-in exp/tanh (their results are not specified to the bit).

#define ADD_CHUNK 4096

kernel void add(global const float* restrict a, global const float* restrict b, global float* restrict c, int n)
{
    int i = get_global_id(0) * ADD_CHUNK;
    int end = min(i + ADD_CHUNK, n);
    for (; i + 16 <= end; i += 16)
        vstore16(vload16(0, a + i) + vload16(0, b + i), 0, c + i);
    for (; i < end; i++)
        c[i] = a[i] + b[i];
}

// Platform.Worker.Compute.ReproMath, operation for operation (its comment is the normative text; the constants are
// the same decimal literals, so they round to the same floats).
#define REPRO_EXP_OVERFLOW 88.72283172607421875f
#define REPRO_EXP_UNDERFLOW -103.97208404541015625f
#define REPRO_TANH_POLY 0.625f
#define REPRO_TANH_SAT 10.0f
#define REPRO_LOG2E 1.44269502162933349609375f
#define REPRO_MAGIC 12582912.0f
#define REPRO_LN2_HI 0.693359375f
#define REPRO_LN2_LO -2.12194440e-4f
#define REPRO_EXP_P0 1.9875691500e-4f
#define REPRO_EXP_P1 1.3981999507e-3f
#define REPRO_EXP_P2 8.3334519073e-3f
#define REPRO_EXP_P3 4.1665795894e-2f
#define REPRO_EXP_P4 1.6666665459e-1f
#define REPRO_EXP_P5 5.0000001201e-1f
#define REPRO_TANH_P0 -5.70498872745e-3f
#define REPRO_TANH_P1 2.06390887954e-2f
#define REPRO_TANH_P2 -5.37397155531e-2f
#define REPRO_TANH_P3 1.33314422036e-1f
#define REPRO_TANH_P4 -3.33332819422e-1f

float repro_exp(float x)
{
    if (isnan(x))
        return x;
    if (x > REPRO_EXP_OVERFLOW)
        return INFINITY;
    if (x < REPRO_EXP_UNDERFLOW)
        return 0.0f;
    float t = x * REPRO_LOG2E;
    float kf = (t + REPRO_MAGIC) - REPRO_MAGIC;
    int n = (int)kf;
    float r = fma(kf, -REPRO_LN2_HI, x);
    r = fma(kf, -REPRO_LN2_LO, r);
    float z = r * r;
    float p = fma(REPRO_EXP_P0, r, REPRO_EXP_P1);
    p = fma(p, r, REPRO_EXP_P2);
    p = fma(p, r, REPRO_EXP_P3);
    p = fma(p, r, REPRO_EXP_P4);
    p = fma(p, r, REPRO_EXP_P5);
    float y = fma(p, z, r);
    y = y + 1.0f;
    if (n > 127)
        return y * 2.0f * as_float(254 << 23);
    if (n < -126)
        return y * as_float((n + 64 + 127) << 23) * as_float((-64 + 127) << 23);
    return y * as_float((n + 127) << 23);
}

float16 repro_exp16(float16 x)
{
    float16 t = x * REPRO_LOG2E;
    float16 kf = (t + REPRO_MAGIC) - REPRO_MAGIC;
    // Lanes past the thresholds (or NaN) compute garbage here and are replaced below.
    int16 n = convert_int16_sat(kf);
    float16 r = fma(kf, (float16)(-REPRO_LN2_HI), x);
    r = fma(kf, (float16)(-REPRO_LN2_LO), r);
    float16 z = r * r;
    float16 p = fma((float16)REPRO_EXP_P0, r, (float16)REPRO_EXP_P1);
    p = fma(p, r, (float16)REPRO_EXP_P2);
    p = fma(p, r, (float16)REPRO_EXP_P3);
    p = fma(p, r, (float16)REPRO_EXP_P4);
    p = fma(p, r, (float16)REPRO_EXP_P5);
    float16 y = fma(p, z, r);
    y = y + 1.0f;
    // The scalar's three scalings as two multiplies per lane: y·2^n·1 (exact), (y·2)·2^127, (y·2^(n+64))·2^-64.
    int16 big = n > 127;
    int16 small = n < -126;
    int16 first = select(select(n, n + 64, small), (int16)1, big);
    int16 second = select(select((int16)0, (int16)(-64), small), (int16)127, big);
    float16 result = y * as_float16((first + 127) << 23) * as_float16((second + 127) << 23);
    result = select(result, (float16)0.0f, x < REPRO_EXP_UNDERFLOW);
    result = select(result, (float16)INFINITY, x > REPRO_EXP_OVERFLOW);
    return select(result, x, isnan(x));
}

float repro_tanh(float x)
{
    if (isnan(x))
        return x;
    float a = as_float(as_int(x) & 0x7FFFFFFF);
    float r;
    if (a < REPRO_TANH_POLY)
    {
        float z = a * a;
        float p = fma(REPRO_TANH_P0, z, REPRO_TANH_P1);
        p = fma(p, z, REPRO_TANH_P2);
        p = fma(p, z, REPRO_TANH_P3);
        p = fma(p, z, REPRO_TANH_P4);
        r = fma(p * z, a, a);
    }
    else if (a < REPRO_TANH_SAT)
    {
        r = 1.0f - (2.0f / (repro_exp(a + a) + 1.0f));
    }
    else
    {
        r = 1.0f;
    }
    return as_float(as_int(r) | (as_int(x) & INT_MIN));
}

float16 repro_tanh16(float16 x)
{
    float16 a = as_float16(as_int16(x) & (int16)0x7FFFFFFF);
    float16 z = a * a;
    float16 p = fma((float16)REPRO_TANH_P0, z, (float16)REPRO_TANH_P1);
    p = fma(p, z, (float16)REPRO_TANH_P2);
    p = fma(p, z, (float16)REPRO_TANH_P3);
    p = fma(p, z, (float16)REPRO_TANH_P4);
    float16 r = fma(p * z, a, a);
    int16 polynomial = a < REPRO_TANH_POLY;
    if (!all(polynomial))
    {
        float16 viaExp = 1.0f - (2.0f / (repro_exp16(a + a) + 1.0f));
        r = select(select(viaExp, (float16)1.0f, a >= REPRO_TANH_SAT), r, polynomial);
    }
    float16 signed_r = as_float16(as_int16(r) | (as_int16(x) & (int16)INT_MIN));
    return select(signed_r, x, isnan(x));
}

// Must match the order of Platform.Worker.Compute.Activation.
#define ACT_IDENTITY 0
#define ACT_RELU 1
#define ACT_TANH 2
#define ACT_SIGMOID 3

// relu is x < 0 ? +0 : x, so NaN and -0 pass through (fmax would turn NaN into 0 and is loose about -0).
float16 activate16(float16 x, int f)
{
    switch (f)
    {
        case ACT_RELU: return select(x, (float16)0.0f, x < 0.0f);
        case ACT_TANH: return repro_tanh16(x);
        case ACT_SIGMOID: return 1.0f / (1.0f + repro_exp16(-x));
        default: return x;
    }
}

float activate1(float x, int f)
{
    switch (f)
    {
        case ACT_RELU: return x < 0.0f ? 0.0f : x;
        case ACT_TANH: return repro_tanh(x);
        case ACT_SIGMOID: return 1.0f / (1.0f + repro_exp(-x));
        default: return x;
    }
}

// Each work-item takes rowsPerItem rows.
kernel void bias_activation(global float* c, global const float* restrict bias, int rows, int cols, int activation, int rowsPerItem)
{
    int r0 = get_global_id(0) * rowsPerItem;
    int r1 = min(r0 + rowsPerItem, rows);
    for (int r = r0; r < r1; r++)
    {
        global float* row = c + (size_t)r * cols;
        int j = 0;
        for (; j + 16 <= cols; j += 16)
            vstore16(activate16(vload16(0, row + j) + vload16(0, bias + j), activation), 0, row + j);
        for (; j < cols; j++)
            row[j] = activate1(row[j] + bias[j], activation);
    }
}
