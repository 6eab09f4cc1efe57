using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Reference;

/// <summary>
/// The matrix ops: Linear, HeadwiseLinear, GroupedLinear, DequantizeFp8 and Embedding, the specification every
/// backend is tested against. <c>y[r, o] = sum_c x[r, c] * W[o, c] (+ bias[o])</c> in float32, the bias added after
/// the dot product. bf16 weights are widened to float32 in registers where they lie (<see cref="DotBf16"/>), so decode
/// reads each weight once and writes only the outputs; FP8 and INT4 weights are dequantised to bf16 once per block of
/// rows (<see cref="WeightData.DecodeRowsToBf16"/>: FP8 times the block scale, INT4 minus the group's zero point times
/// the group's scale, rounded to bf16) and dotted the same way;
/// float32 weights go to TensorPrimitives.Dot. Blocks of weight rows run in parallel when the product is large.
/// Arguments are assumed valid (the op API checks them); addresses are host memory (the CPU accelerator's buffers, or
/// the reference backend's pinned copies).
/// </summary>
internal static unsafe class LinearReference
{
    const long ParallelThreshold = 1 << 19; // multiply-adds; below this one thread is faster (measured on 2 cores)
    const int ScratchFloats = 1 << 15;      // Dequantize: float32 rows decoded per task, 128 KiB
    const int TaskBytes = 1 << 18;          // Linear: weight rows per task as bf16, 256 KiB, about an L2 share
    const int GroupRows = 4;                // weight rows per DotBf16 call

    /// <summary>One "rows of x times a matrix" product: y[r * YStride + o] = x[r * XStride ..] . W[o] (+ Bias[o]).</summary>
    public readonly record struct Product(WeightData Weight, nint X, long XStride, int Rows, nint Bias, nint Y, long YStride);

    /// <summary>destination [rows, W.Rows] = x [rows, W.Cols] @ W^T (+ bias).</summary>
    public static void Linear(WeightData w, nint x, int rows, nint bias, nint y) =>
        Run([new Product(w, x, w.Cols, rows, bias, y, w.Rows)]);

    /// <summary>
    /// y[r * yStride + j] = silu(g) * u for j &lt; half = W.Rows / 2, with g and u row r's float32 dot products with W's
    /// rows j and half + j: the gate|up product into float32 scratch, then SiLU-and-mul exactly as
    /// <see cref="ElementwiseReference.SiluAndMul"/> computes it.
    /// </summary>
    public static void LinearSiluMul(WeightData w, nint x, long xStride, int rows, nint y, long yStride)
    {
        int half = w.Rows / 2;
        var scratch = GC.AllocateUninitializedArray<float>(checked(rows * 2 * half), pinned: true);
        fixed (float* gu = scratch)
        {
            Run([new Product(w, x, xStride, rows, 0, (nint)gu, 2L * half)]);
            for (int r = 0; r < rows; r++)
                ElementwiseReference.SiluAndMul((nint)(gu + 2L * r * half), y + (nint)(r * yStride * sizeof(float)), 1, half);
        }
    }

    /// <summary>Where token t, head h of x and y are: element offsets t * TokenStride + h * HeadStride (then dense).</summary>
    public readonly record struct HeadwiseLayout(int Tokens, long XTokenStride, long XHeadStride, long YTokenStride, long YHeadStride);

    /// <summary>y[t, h, :] = W[h] @ x[t, h, :] for every head h of the stack.</summary>
    public static void Headwise(WeightData w, nint x, nint y, HeadwiseLayout l)
    {
        int heads = w.Count;
        var products = new Product[heads];
        for (int h = 0; h < heads; h++)
        {
            products[h] = new Product(w.Matrix(h), x + (nint)(h * l.XHeadStride * sizeof(float)), l.XTokenStride, l.Tokens, 0,
                y + (nint)(h * l.YHeadStride * sizeof(float)), l.YTokenStride);
        }
        Run(products);
    }

    /// <summary>y[t, h, c] = sum_o W[h][o, c] * x[t, h, o] (W[h]^T @ x[t, h, :]), summed over o in order.</summary>
    public static void HeadwiseTransposed(WeightData w, nint x, nint y, HeadwiseLayout l)
    {
        int heads = w.Count, rows = w.Rows, cols = w.Cols, tokens = l.Tokens;
        void Head(int h, float[] matrix)
        {
            var weight = w.Matrix(h);
            weight.DecodeRows(0, rows, matrix);
            for (int t = 0; t < tokens; t++)
            {
                float* xv = (float*)x + t * l.XTokenStride + h * l.XHeadStride;
                var acc = new Span<float>((float*)y + t * l.YTokenStride + h * l.YHeadStride, cols);
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

    /// <summary>
    /// For every matrix e of the stack with rows offsets[e] .. offsets[e + 1]: y[r] = x[r] @ W[e]^T, or with siluMul
    /// y[r, j] = silu(g) * u of that row's [g | u] = x[r] @ W[e]^T (float32, as <see cref="LinearSiluMul"/>).
    /// </summary>
    public static void Grouped(IReadOnlyList<(int Expert, WeightData Weight)> used, ReadOnlySpan<int> offsets, nint x, nint y, long yStride,
        bool siluMul = false)
    {
        if (siluMul)
        {
            foreach (var (e, w) in used)
            {
                int first = offsets[e];
                LinearSiluMul(w, x + (nint)((long)first * w.Cols * sizeof(float)), w.Cols, offsets[e + 1] - first,
                    y + (nint)(first * yStride * sizeof(float)), yStride);
            }
            return;
        }
        var products = new List<Product>(used.Count);
        foreach (var (e, w) in used)
        {
            int first = offsets[e], rows = offsets[e + 1] - first;
            products.Add(new Product(w, x + (nint)((long)first * w.Cols * sizeof(float)), w.Cols, rows, 0,
                y + (nint)(first * yStride * sizeof(float)), yStride));
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

    /// <summary>
    /// Runs the products as tasks of up to 64 weight rows (about TaskBytes of bf16), in parallel when the total work is
    /// large. bf16 rows are dotted where they lie (<see cref="DotBf16"/>); FP8 and INT4 rows are first dequantised to bf16
    /// into a per-thread scratch, once per task for all x rows; float32 rows go to TensorPrimitives.Dot. An output does not
    /// depend on the number of x rows, the tasks or the threads, so one token decoded alone equals that token in a batch.
    /// </summary>
    public static void Run(IReadOnlyList<Product> products)
    {
        // x rows of the bf16, FP8 and INT4 products, split once into even and odd columns for DotBf16
        var splitAt = new long[products.Count];
        long splitLength = 0;
        for (int p = 0; p < products.Count; p++)
        {
            splitAt[p] = splitLength;
            if (products[p].Weight.Type != ElementType.F32)
                splitLength += (long)products[p].Rows * (products[p].Weight.Cols & ~1);
        }
        var xSplit = ArrayPool<float>.Shared.Rent(checked((int)splitLength));
        for (int p = 0; p < products.Count; p++)
        {
            var product = products[p];
            if (product.Weight.Type != ElementType.F32)
            {
                int half = product.Weight.Cols / 2;
                for (int r = 0; r < product.Rows; r++)
                    SplitEvenOdd((float*)product.X + r * product.XStride, xSplit.AsSpan((int)(splitAt[p] + 2L * r * half), 2 * half));
            }
        }

        // tasks: (product, block of weight rows); each dots its rows against every x row
        var tasks = new List<(int Product, int FirstRow, int Count)>();
        long work = 0;
        int scratch = 0;
        for (int p = 0; p < products.Count; p++)
        {
            var w = products[p].Weight;
            if (products[p].Rows == 0)
                continue;
            int block = Math.Clamp(TaskBytes / (2 * w.Cols) / GroupRows * GroupRows, GroupRows, 64);
            for (int first = 0; first < w.Rows; first += block)
                tasks.Add((p, first, Math.Min(block, w.Rows - first)));
            work += (long)products[p].Rows * w.Rows * w.Cols;
            if (w.IsQuantized)
                scratch = Math.Max(scratch, block * w.Cols);
        }

        void Block(int index, ushort[]? decodeScratch)
        {
            var (p, first, count) = tasks[index];
            var product = products[p];
            var w = product.Weight;
            int cols = w.Cols;
            float* bias = (float*)product.Bias;
            if (w.IsQuantized)
                w.DecodeRowsToBf16(first, count, decodeScratch);
            fixed (ushort* decoded = decodeScratch)
            fixed (float* split = xSplit)
            {
                ushort* rows = w.Type == ElementType.BF16 ? (ushort*)w.Data + (long)first * cols : decoded;
                for (int r = 0; r < product.Rows; r++)
                {
                    float* x = (float*)product.X + r * product.XStride;
                    float* y = (float*)product.Y + r * product.YStride + first;
                    if (w.Type == ElementType.F32)
                    {
                        var xRow = new ReadOnlySpan<float>(x, cols);
                        for (int i = 0; i < count; i++)
                            y[i] = TensorPrimitives.Dot(xRow, new ReadOnlySpan<float>((float*)w.Data + (long)(first + i) * cols, cols));
                    }
                    else
                    {
                        for (int i = 0; i < count; i += GroupRows)
                            DotBf16(x, split + splitAt[p] + 2L * r * (cols / 2), rows + (long)i * cols, cols, Math.Min(GroupRows, count - i), y + i);
                    }
                    if (bias != null)
                    {
                        for (int i = 0; i < count; i++)
                            y[i] += bias[first + i];
                    }
                }
            }
        }

        if (work < ParallelThreshold || tasks.Count == 1)
        {
            var decodeScratch = scratch == 0 ? null : ArrayPool<ushort>.Shared.Rent(scratch);
            for (int i = 0; i < tasks.Count; i++)
                Block(i, decodeScratch);
            if (decodeScratch != null)
                ArrayPool<ushort>.Shared.Return(decodeScratch);
        }
        else
        {
            Parallel.For(0, tasks.Count, () => scratch == 0 ? null : ArrayPool<ushort>.Shared.Rent(scratch),
                (i, _, decodeScratch) => { Block(i, decodeScratch); return decodeScratch; },
                decodeScratch => { if (decodeScratch != null) ArrayPool<ushort>.Shared.Return(decodeScratch); });
        }
        ArrayPool<float>.Shared.Return(xSplit);
    }

    /// <summary>destination = [x[0], x[2], .. | x[1], x[3], ..]: the first destination.Length columns of x, even ones first.</summary>
    static void SplitEvenOdd(float* x, Span<float> destination)
    {
        int half = destination.Length / 2;
        for (int j = 0; j < half; j++)
        {
            destination[j] = x[2 * j];
            destination[half + j] = x[2 * j + 1];
        }
    }

    /// <summary>
    /// y[k] = sum_c x[c] * W[k, c] in float32 for the <paramref name="count"/> (1 to 4) bf16 rows of W ([count, cols]),
    /// reading each weight once. A 32-bit lane holds two bf16 weights, columns 2j and 2j + 1: shifted left 16 bits it is
    /// the even one as float32, its high half masked it is the odd one, so x comes split into its even and odd columns
    /// (<paramref name="xSplit"/>, <see cref="SplitEvenOdd"/>); the four rows share each load of x. Order of the sum: per
    /// lane, fused multiply-adds over the even columns and, separately, the odd ones, up to a multiple of
    /// 2 * Vector&lt;float&gt;.Count columns; the two added and the lanes summed; then the remaining columns in order.
    /// </summary>
    static void DotBf16(float* x, float* xSplit, ushort* w, int cols, int count, float* y)
    {
        // missing rows repeat the last one: computed, not stored
        uint* w0 = (uint*)w, w1 = (uint*)(w + (long)Math.Min(1, count - 1) * cols);
        uint* w2 = (uint*)(w + (long)Math.Min(2, count - 1) * cols), w3 = (uint*)(w + (long)Math.Min(3, count - 1) * cols);
        int half = cols / 2, n = Vector<float>.Count;
        float* xEven = xSplit, xOdd = xSplit + half;
        var oddMask = new Vector<uint>(0xFFFF_0000);
        Vector<float> e0 = default, o0 = default, e1 = default, o1 = default, e2 = default, o2 = default, e3 = default, o3 = default;
        int j = 0;
        for (; j <= half - n; j += n)
        {
            var xe = Vector.Load(xEven + j);
            var xo = Vector.Load(xOdd + j);
            var pair = Vector.Load(w0 + j);
            e0 = Vector.FusedMultiplyAdd(Vector.AsVectorSingle(pair << 16), xe, e0);
            o0 = Vector.FusedMultiplyAdd(Vector.AsVectorSingle(pair & oddMask), xo, o0);
            pair = Vector.Load(w1 + j);
            e1 = Vector.FusedMultiplyAdd(Vector.AsVectorSingle(pair << 16), xe, e1);
            o1 = Vector.FusedMultiplyAdd(Vector.AsVectorSingle(pair & oddMask), xo, o1);
            pair = Vector.Load(w2 + j);
            e2 = Vector.FusedMultiplyAdd(Vector.AsVectorSingle(pair << 16), xe, e2);
            o2 = Vector.FusedMultiplyAdd(Vector.AsVectorSingle(pair & oddMask), xo, o2);
            pair = Vector.Load(w3 + j);
            e3 = Vector.FusedMultiplyAdd(Vector.AsVectorSingle(pair << 16), xe, e3);
            o3 = Vector.FusedMultiplyAdd(Vector.AsVectorSingle(pair & oddMask), xo, o3);
        }
        float s0 = Vector.Sum(e0 + o0), s1 = Vector.Sum(e1 + o1), s2 = Vector.Sum(e2 + o2), s3 = Vector.Sum(e3 + o3);
        ushort* r0 = (ushort*)w0, r1 = (ushort*)w1, r2 = (ushort*)w2, r3 = (ushort*)w3;
        for (int c = 2 * j; c < cols; c++)
        {
            s0 += x[c] * Widen(r0[c]);
            s1 += x[c] * Widen(r1[c]);
            s2 += x[c] * Widen(r2[c]);
            s3 += x[c] * Widen(r3[c]);
        }
        y[0] = s0;
        if (count > 1) y[1] = s1;
        if (count > 2) y[2] = s2;
        if (count > 3) y[3] = s3;
    }

    /// <summary>A bf16 weight's bits as float32 (exact).</summary>
    static float Widen(ushort bf16) => BitConverter.UInt32BitsToSingle((uint)bf16 << 16);

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
