// Element-wise primitives. A work-item takes a whole chunk or row so that PoCL's per-work-item overhead is
// amortised and the body runs on 16-wide vectors with a scalar tail.

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

// Must match the order of Platform.Worker.Compute.Activation.
#define ACT_IDENTITY 0
#define ACT_RELU 1
#define ACT_TANH 2
#define ACT_SIGMOID 3

float16 activate16(float16 x, int f)
{
    switch (f)
    {
        case ACT_RELU: return fmax(x, 0.0f);
        case ACT_TANH: return tanh(x);
        case ACT_SIGMOID: return 1.0f / (1.0f + exp(-x));
        default: return x;
    }
}

float activate1(float x, int f)
{
    switch (f)
    {
        case ACT_RELU: return fmax(x, 0.0f);
        case ACT_TANH: return tanh(x);
        case ACT_SIGMOID: return 1.0f / (1.0f + exp(-x));
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
