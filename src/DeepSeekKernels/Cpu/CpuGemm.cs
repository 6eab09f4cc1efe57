using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using DeepSeekKernels.Reference;

namespace DeepSeekKernels.Cpu;

/// <summary>
/// The CPU backend's GEMM for prefill: <c>y[r, o] = sum_c x[r, c] * W[o, c] (+ bias[o])</c> for many x rows, float32 x
/// and y, W in any <see cref="WeightData"/> form, float32 accumulation. BLIS-style blocking:
/// <list type="number">
/// <item>x rows are processed in equal chunks of at most about <see cref="ChunkRows"/>; each chunk is packed once (all threads
/// together) into row blocks of MR rows laid out [K][MR], zero rows padding the last block;</item>
/// <item>threads take tasks of Nb weight rows (<see cref="CpuThreadPool.For"/>); a task decodes its rows to float32, Kc
/// columns at a time, into a per-thread panel of about <see cref="PanelBytes"/> (<see cref="WeightPanelDecode"/>: stays
/// in L2, decoded once and reused by every x row of the chunk, which is what makes quantised weights as fast as bf16),</item>
/// <item>and runs an MR x NR register-blocked micro-kernel (<see cref="GemmMicroKernels"/>) over every row block and
/// panel slice; the first column block stores, later ones add, the last one adds the bias.</item>
/// </list>
/// An output depends only on its x row and W row (not on the number of rows, the tasks or the threads), but its order of
/// summation differs from <see cref="LinearReference"/>'s. Arguments are assumed valid (w.Count == 1, buffers large
/// enough); nothing is allocated per call beyond per-thread scratch that grows and is kept.
/// </summary>
internal static unsafe class CpuGemm
{
    /// <summary>x rows packed and computed per round (per chunk) at most; the rows are split into equal chunks of whole MR blocks.</summary>
    const int ChunkRows = 768;
    /// <summary>Columns of W decoded per panel at most (a longer K takes several column blocks).</summary>
    const int MaxKc = 1024;
    /// <summary>Bytes of float32 weights per decoded panel (per thread, in L2: Zen 4 has 1 MiB).</summary>
    const int PanelBytes = 256 << 10;

    /// <summary>
    /// Tile rows (MR) and columns (NR) of a level's micro-kernel (the level is <see cref="CpuIsa.Level"/>, as for the GEMV:
    /// Vector512 12 x 32, Vector256 + FMA 6 x 16, Vector128 4 x 8).
    /// </summary>
    internal static (int Mr, int Nr) Tile(CpuIsaLevel isa) => isa switch
    {
        CpuIsaLevel.Avx512 => (12, 32),
        CpuIsaLevel.Avx2 => (6, 16),
        _ => (4, 8),
    };

    [ThreadStatic] static Call? t_call;
    [ThreadStatic] static float[]? t_panel;

    /// <summary>
    /// y[r * yStride + o] = sum_c x[r * xStride + c] * W[o, c] (+ bias[o]) for r &lt; rows, o &lt; w.Rows, c &lt; w.Cols;
    /// bias null for none. w is one matrix (Count 1) of any form.
    /// </summary>
    public static void Run(CpuThreadPool pool, in WeightData w, float* x, long xStride, int rows, float* bias, float* y, long yStride)
    {
        if (rows <= 0 || w.Rows == 0)
            return;
        if (w.Cols == 0)
        {
            for (int r = 0; r < rows; r++)
            {
                for (int o = 0; o < w.Rows; o++)
                    y[r * yStride + o] = bias == null ? 0f : bias[o];
            }
            return;
        }
        var isa = CpuIsa.Level;
        var (mr, nr) = Tile(isa);
        int k = w.Cols, n = w.Rows;
        int kBlocks = (k + MaxKc - 1) / MaxKc;
        int kc = (k + kBlocks - 1) / kBlocks;
        int nb = Math.Max(nr, PanelBytes / (kc * sizeof(float)) / nr * nr);
        // at least about four tasks per thread where the matrix allows, so threads finish together
        int fair = (n + 4 * pool.Threads - 1) / (4 * pool.Threads);
        nb = Math.Min(nb, Math.Max(nr, (fair + nr - 1) / nr * nr));
        int rowBlocks = (rows + mr - 1) / mr, chunks = (rows + ChunkRows - 1) / ChunkRows;
        int chunkBlocks = (rowBlocks + chunks - 1) / chunks; // equal chunks: no small last one that decodes every panel again

        var call = t_call ??= new Call();
        call.W = w;
        call.X = x;
        call.XStride = xStride;
        call.Bias = bias;
        call.Y = y;
        call.YStride = yStride;
        call.Isa = isa;
        call.Mr = mr;
        call.Nr = nr;
        call.Kc = kc;
        call.Nb = nb;
        int chunkRowsMax = Math.Min(rows, chunkBlocks * mr);
        call.Xp = Scratch(ref call.XpArray, (long)(chunkRowsMax + mr - 1) / mr * mr * k);
        try
        {
            for (int first = 0; first < rows; first += chunkBlocks * mr)
            {
                call.FirstRow = first;
                call.ChunkRows = Math.Min(chunkBlocks * mr, rows - first);
                int blocks = (call.ChunkRows + mr - 1) / mr;
                if (blocks > 1 && (long)call.ChunkRows * k > 1 << 14)
                    pool.For(blocks, call.PackBody);
                else
                {
                    for (int b = 0; b < blocks; b++)
                        call.Pack(b);
                }
                int tasks = (n + nb - 1) / nb;
                pool.For(tasks, call.ComputeBody);
            }
        }
        finally
        {
            call.W = default;
            call.X = call.Y = call.Bias = call.Xp = null;
        }
    }

    /// <summary>
    /// A pinned, 64-byte aligned scratch of at least <paramref name="floats"/> floats in <paramref name="array"/> (a
    /// caller's per-thread field), grown when too small (to the need, or by half when the need is just past it) and
    /// otherwise reused: no allocation per call. Its contents are not kept across a growth.
    /// </summary>
    internal static float* Scratch(ref float[]? array, long floats)
    {
        if (array == null || array.Length < floats + 16)
            array = GC.AllocateUninitializedArray<float>(checked((int)Math.Max(floats + 16, (array?.Length ?? 0) * 3L / 2)), pinned: true);
        nint address = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array));
        return (float*)((address + 63) & ~(nint)63);
    }

    /// <summary>One call's arguments and plan, kept per calling thread with its delegates (no allocation per call).</summary>
    sealed class Call
    {
        public WeightData W;
        public float* X, Bias, Y, Xp;
        public long XStride, YStride;
        public CpuIsaLevel Isa;
        public int Mr, Nr, Kc, Nb, FirstRow, ChunkRows;
        public float[]? XpArray;
        public readonly Action<int> PackBody, ComputeBody;

        public Call()
        {
            PackBody = Pack;
            ComputeBody = Compute;
        }

        /// <summary>Row block b of the chunk into Xp[b][K][MR] (zeros past the last row).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Pack(int b)
        {
            int mr = Mr, k = W.Cols;
            float* dst = Xp + (long)b * k * mr;
            for (int i = 0; i < mr; i++)
            {
                int r = b * mr + i;
                if (r < ChunkRows)
                {
                    float* src = X + (FirstRow + r) * XStride;
                    for (int c = 0; c < k; c++)
                        dst[c * mr + i] = src[c];
                }
                else
                {
                    for (int c = 0; c < k; c++)
                        dst[c * mr + i] = 0f;
                }
            }
        }

        /// <summary>W rows [task * Nb, ..) against every row of the chunk.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Compute(int task)
        {
            int mr = Mr, nr = Nr, k = W.Cols, n0 = task * Nb, count = Math.Min(Nb, W.Rows - n0);
            int slices = (count + nr - 1) / nr, blocks = (ChunkRows + mr - 1) / mr;
            float* panel = Scratch(ref t_panel, (long)slices * nr * Kc);
            float* tile = stackalloc float[12 * 32 + 16];
            tile = (float*)(((nint)tile + 63) & ~(nint)63);
            for (int k0 = 0; k0 < k; k0 += Kc)
            {
                int kc = Math.Min(Kc, k - k0);
                bool accumulate = k0 > 0, last = k0 + kc == k;
                WeightPanelDecode.Decode(W, n0, count, k0, kc, nr, panel, Isa);
                for (int b = 0; b < blocks; b++)
                {
                    float* xp = Xp + ((long)b * k + k0) * mr;
                    int r0 = FirstRow + b * mr, validRows = Math.Min(mr, ChunkRows - b * mr);
                    for (int s = 0; s < slices; s++)
                    {
                        int o = n0 + s * nr, validCols = Math.Min(nr, count - s * nr);
                        float* wp = panel + (long)s * kc * nr;
                        float* c = Y + r0 * YStride + o;
                        float* bias = last && Bias != null ? Bias + o : null;
                        if (validRows == mr && validCols == nr)
                            Kernel(xp, wp, kc, c, YStride, accumulate, bias);
                        else
                        {
                            Kernel(xp, wp, kc, tile, nr, false, null);
                            for (int i = 0; i < validRows; i++)
                            {
                                for (int j = 0; j < validCols; j++)
                                {
                                    float value = tile[i * nr + j];
                                    if (accumulate)
                                        value = c[i * YStride + j] + value;
                                    if (bias != null)
                                        value += bias[j];
                                    c[i * YStride + j] = value;
                                }
                            }
                        }
                    }
                }
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Kernel(float* xp, float* wp, int kc, float* c, long cStride, bool accumulate, float* bias)
        {
            switch (Isa)
            {
                case CpuIsaLevel.Avx512:
                    GemmMicroKernels.Avx512(xp, wp, kc, c, cStride, accumulate, bias);
                    break;
                case CpuIsaLevel.Avx2:
                    GemmMicroKernels.Avx2(xp, wp, kc, c, cStride, accumulate, bias);
                    break;
                default:
                    GemmMicroKernels.Portable(xp, wp, kc, c, cStride, accumulate, bias);
                    break;
            }
        }
    }
}
