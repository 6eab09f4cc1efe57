using System.Numerics.Tensors;

namespace DeepSeekKernels.Reference;

/// <summary>
/// The matrix ops: Linear, HeadwiseLinear, GroupedLinear, DequantizeFp8 and Embedding, the specification every
/// backend is tested against. <c>y[r, o] = sum_c x[r, c] * W[o, c] (+ bias[o])</c> in float32: each block of
/// weight rows is decoded to float32 once (bf16 widened exactly, FP8 times its block scale, rounded to bf16) and
/// dotted (TensorPrimitives.Dot) against every x row; the bias is added after the dot product. Blocks of weight
/// rows run in parallel when the product is large. Arguments are assumed valid (the op API checks them);
/// addresses are host memory (the CPU accelerator's buffers, or the reference backend's pinned copies).
/// </summary>
internal static unsafe class LinearReference
{
    const long ParallelThreshold = 1 << 17; // multiply-adds; below this one thread is faster
    const int ScratchFloats = 1 << 15;      // decoded weight rows per block: 128 KiB, about an L2 share

    /// <summary>One "rows of x times a matrix" product: y[r * YStride + o] = x[r * XStride ..] . W[o] (+ Bias[o]).</summary>
    public readonly record struct Product(WeightData Weight, nint X, long XStride, int Rows, nint Bias, nint Y, long YStride);

    /// <summary>destination [rows, W.Rows] = x [rows, W.Cols] @ W^T (+ bias).</summary>
    public static void Linear(WeightData w, nint x, int rows, nint bias, nint y) =>
        Run([new Product(w, x, w.Cols, rows, bias, y, w.Rows)]);

    /// <summary>y[t, h, :] = W[h] @ x[t, h, :] for every head h of the stack.</summary>
    public static void Headwise(WeightData w, nint x, int tokens, nint y)
    {
        int heads = w.Count;
        var products = new Product[heads];
        for (int h = 0; h < heads; h++)
        {
            products[h] = new Product(w.Matrix(h), x + (nint)((long)h * w.Cols * sizeof(float)), (long)heads * w.Cols, tokens, 0,
                y + (nint)((long)h * w.Rows * sizeof(float)), (long)heads * w.Rows);
        }
        Run(products);
    }

    /// <summary>y[t, h, c] = sum_o W[h][o, c] * x[t, h, o] (W[h]^T @ x[t, h, :]), summed over o in order.</summary>
    public static void HeadwiseTransposed(WeightData w, nint x, int tokens, nint y)
    {
        int heads = w.Count, rows = w.Rows, cols = w.Cols;
        void Head(int h, float[] matrix)
        {
            var weight = w.Matrix(h);
            weight.DecodeRows(0, rows, matrix);
            for (int t = 0; t < tokens; t++)
            {
                float* xv = (float*)x + ((long)t * heads + h) * rows;
                var acc = new Span<float>((float*)y + ((long)t * heads + h) * cols, cols);
                acc.Clear();
                for (int o = 0; o < rows; o++)
                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(matrix, o * cols, cols), xv[o], acc, acc);
            }
        }
        if ((long)heads * tokens * rows * cols < ParallelThreshold)
        {
            var matrix = new float[rows * cols];
            for (int h = 0; h < heads; h++)
                Head(h, matrix);
            return;
        }
        Parallel.For(0, heads, () => new float[rows * cols], (h, _, matrix) => { Head(h, matrix); return matrix; }, _ => { });
    }

    /// <summary>For every matrix e of the stack with rows offsets[e] .. offsets[e + 1]: y[r] = x[r] @ W[e]^T.</summary>
    public static void Grouped(IReadOnlyList<(int Expert, WeightData Weight)> used, ReadOnlySpan<int> offsets, nint x, nint y)
    {
        var products = new List<Product>(used.Count);
        foreach (var (e, w) in used)
        {
            int first = offsets[e], rows = offsets[e + 1] - first;
            products.Add(new Product(w, x + (nint)((long)first * w.Cols * sizeof(float)), w.Cols, rows, 0,
                y + (nint)((long)first * w.Rows * sizeof(float)), w.Rows));
        }
        Run(products);
    }

    /// <summary>y [Count, Rows, Cols] = the weight decoded to float32.</summary>
    public static void Dequantize(WeightData w, nint y)
    {
        int rowsPerTask = Math.Max(1, ScratchFloats / w.Cols);
        int tasksPerMatrix = (w.Rows + rowsPerTask - 1) / rowsPerTask;
        void DecodeTask(int task)
        {
            int m = task / tasksPerMatrix, first = task % tasksPerMatrix * rowsPerTask;
            int count = Math.Min(rowsPerTask, w.Rows - first);
            var destination = new Span<float>((float*)y + ((long)m * w.Rows + first) * w.Cols, count * w.Cols);
            w.Matrix(m).DecodeRows(first, count, destination);
        }
        int tasks = w.Count * tasksPerMatrix;
        if ((long)w.Count * w.Rows * w.Cols < ParallelThreshold)
        {
            for (int task = 0; task < tasks; task++)
                DecodeTask(task);
            return;
        }
        Parallel.For(0, tasks, DecodeTask);
    }

    /// <summary>
    /// y[i, :] = table[ids[i], :]. Every id is checked before anything is written: the first one outside
    /// [0, table.Rows) throws ArgumentOutOfRangeException naming it and its index.
    /// </summary>
    public static void Embedding(ReadOnlySpan<int> ids, WeightData table, nint y)
    {
        CheckIds(ids, table.Rows);
        for (int i = 0; i < ids.Length; i++)
            table.DecodeRows(ids[i], 1, new Span<float>((float*)y + (long)i * table.Cols, table.Cols));
    }

    /// <summary>Runs the products, split into blocks of weight rows, in parallel when the total work is large.</summary>
    static void Run(IReadOnlyList<Product> products)
    {
        // tasks: (product, block of weight rows); each decodes its rows once and dots them against every x row
        var tasks = new List<(int Product, int FirstRow, int Count)>();
        long work = 0;
        int scratch = 0;
        for (int p = 0; p < products.Count; p++)
        {
            var w = products[p].Weight;
            if (products[p].Rows == 0)
                continue;
            int block = Math.Clamp(ScratchFloats / w.Cols, 1, 64);
            for (int first = 0; first < w.Rows; first += block)
                tasks.Add((p, first, Math.Min(block, w.Rows - first)));
            work += (long)products[p].Rows * w.Rows * w.Cols;
            scratch = Math.Max(scratch, block * w.Cols);
        }
        void Block(int index, float[] decoded)
        {
            var (p, first, count) = tasks[index];
            var product = products[p];
            var w = product.Weight;
            int cols = w.Cols;
            w.DecodeRows(first, count, decoded);
            float* bias = (float*)product.Bias;
            for (int r = 0; r < product.Rows; r++)
            {
                var xRow = new ReadOnlySpan<float>((float*)product.X + r * product.XStride, cols);
                float* yRow = (float*)product.Y + r * product.YStride + first;
                for (int i = 0; i < count; i++)
                {
                    float dot = TensorPrimitives.Dot(xRow, new ReadOnlySpan<float>(decoded, i * cols, cols));
                    yRow[i] = bias == null ? dot : dot + bias[first + i];
                }
            }
        }
        if (work < ParallelThreshold || tasks.Count == 1)
        {
            var decoded = new float[scratch];
            for (int i = 0; i < tasks.Count; i++)
                Block(i, decoded);
            return;
        }
        Parallel.For(0, tasks.Count, () => new float[scratch], (i, _, decoded) => { Block(i, decoded); return decoded; }, _ => { });
    }

    /// <summary>Throws ArgumentOutOfRangeException naming the first id outside [0, vocab) and its index.</summary>
    public static void CheckIds(ReadOnlySpan<int> ids, int vocab)
    {
        for (int i = 0; i < ids.Length; i++)
        {
            if ((uint)ids[i] >= (uint)vocab)
                throw new ArgumentOutOfRangeException("tokenIds", ids[i],
                    $"Embedding: tokenIds[{i}] = {ids[i]} is outside [0, {vocab}) (the table's vocabulary).");
        }
    }
}
