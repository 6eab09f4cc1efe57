using System.Collections.Concurrent;
using System.Reflection;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace DeepSeekKernels.Ilgpu;

/// <summary>
/// Linear and HeadwiseLinear as ILGPU kernels: the SIMT algorithm the hand-CUDA <c>kernels/linear_simt.cu</c> implements
/// too. One request is <c>acc[b, i, n] = sum_k x[b, i, k] * w[b', n, k] (+ bias[n])</c> for b &lt; batch (heads),
/// i &lt; m (rows), n &lt; out, with b' = b when the weight is a stack of one matrix per batch entry, else 0; with
/// transpose, w[b', n, k] is the stored element [b', k, n]. x and y rows strided (row and batch strides in elements),
/// f32 or bf16 each; fp32 accumulation, y rounded once. Each weight element is dequantised to exactly the value
/// <see cref="WeightMatrix"/> defines (<see cref="IWeightDecoder{TW}"/>), so results differ from the reference only by the
/// order of the fp32 sums.
/// <list type="bullet">
/// <item><c>GemvKernel</c> (decode, weight streaming): m &lt;= 64, not transposed, weight rows of whole 16-byte chunks
/// (f32: in % 4, bf16: in % 8, FP8: in % 16 and block columns % 16, INT4: always) from a 16-byte-aligned base. A group
/// is 4 warps; a feature gets S of them (split-K, S in 1, 2, 4), whose lanes stride over the row's chunks with stride
/// warp size * S. Each chunk is loaded once and dequantised once (one scale and zero point per chunk), then multiplied
/// into up to 8 rows of x (a row tile; grid.y = row tiles * batch), x read in 16-byte loads where it is aligned. Per row, the lane sums are added over the warp
/// (shuffles), then over the S warps in warp order through shared memory; the bias is added once, y written once. On
/// ILGPU's CPU accelerator, where a shuffle costs a barrier of OS threads, every lane's sums go through shared memory instead
/// and are added lane by lane in order (one barrier per group), and a warp serves 8 features in turn (fewer groups).</item>
/// <item><c>TiledKernel</c> (everything else): a shared-memory tiled SIMT GEMM, tile x tile outputs per group (64 on a
/// GPU, smaller where groups are smaller, as on the CPU accelerator) and 32 in features per step (more at smaller tiles,
/// so the CPU accelerator meets fewer barriers), x and W tiles widened
/// and dequantised to fp32 as they are loaded (either layout of W), a 4 x 4 register tile per thread, k in order.</item>
/// </list>
/// An output's summation order depends on the weight, the shape of W and out, and (gemv or tiled) on m &lt;= 64, never on
/// the other rows: a row computed alone equals that row in a batch of up to 64 rows.
/// Grouped (GroupedLinear, GroupedLinearSiluMul: a stack of one matrix per expert, rows grouped by expert): the same two
/// kernels, grid.y bounded by host sizes (ceil(M / tile) + min(M, experts) row tiles); each group checks the offsets, then
/// finds its expert and first row from them (<see cref="ExpertTile"/>: each expert's rows cut into tiles from its first row)
/// and leaves when it is past the last tile, so a tile never spans two experts and matrix e is streamed once per tile.
/// </summary>
internal sealed class LinearIlgpu(DeviceRuntime runtime)
{
    /// <summary>Warps per gemv group.</summary>
    internal const int GemvWarps = 4;

    /// <summary>Rows of x per gemv row tile (fp32 partial sums each lane keeps per feature).</summary>
    internal const int RowTile = 8;

    /// <summary>Most rows per batch entry that take the gemv.</summary>
    internal const int GemvMaxRows = 64;

    /// <summary>In features per step of the tiled kernel at the largest tile (more at smaller tiles: the shared tiles hold TileK * MaxTile).</summary>
    internal const int TileK = 32;

    /// <summary>Features each gemv warp serves in turn on the CPU accelerator (one on a GPU).</summary>
    internal const int CpuFeaturesPerWarp = 8;

    /// <summary>
    /// Shared floats of the gemv's partial sums: 8 rows of every lane and feature on the CPU accelerator (sized for warps of
    /// up to 4 lanes: its default is 2, <see cref="Runtime.DeviceRuntime.CpuWarpSize"/>; a wider simulated warp takes the
    /// tiled kernel), of every warp on CUDA; twice that with the SiLU-and-mul epilogue (the gate's sums, then the up projection's).
    /// </summary>
    const int GemvPartials = 2 * CpuFeaturesPerWarp * GemvWarps * 4 * RowTile;

    /// <summary>The largest tile of outputs (rows and features) of the tiled kernel.</summary>
    internal const int MaxTile = 64;

    /// <summary>
    /// The "SM count" the split-K rule uses on the CPU accelerator: small, so its tests take S = 4 (out &lt;= 30), S = 2
    /// (out &lt;= 60) and S = 1, while a model's layers take S = 1 and so the fewest groups. Each group costs a barrier of
    /// OS threads there: with an H200's 132, a tiny model's batch-invariance test ran 20x slower than with Linear on the
    /// reference (measured 2026-11-30, 2 loaded cores), against about 2x with 8.
    /// </summary>
    internal const int CpuSmCount = 8;

    /// <summary>Shape of one launch; strides in elements.</summary>
    internal struct Shape
    {
        public int M, N, K, Batch, RowTiles, Split, FeaturesPerWarp, Tile, TileK, Transpose, PerBatchWeight, HasBias, XVectors;

        /// <summary>1: the SiLU-and-mul epilogue; N is then half the weight's rows (the outputs), gate rows n, up rows N + n.</summary>
        public int SiluMul;

        /// <summary>
        /// Grouped (GroupedLinear): Experts &gt; 0 matrices, rows expertOffsets[e] .. expertOffsets[e + 1] of x times matrix e;
        /// grid.y = RowTiles bounds the row tiles (ceil(M / tile) + min(M, Experts)); Site: the error-word site of bad offsets.
        /// </summary>
        public int Experts, Site;
        public long XRowStride, XBatchStride, YRowStride, YBatchStride;
        public WeightShape W;
    }

    readonly ConcurrentDictionary<(bool Gemv, Type X, Type Y, Type W), Delegate> _kernels = new();

    /// <summary>The kernels' delegate: x, x as 16-byte units, y, bias, weight data, weight chunks, scales, offsets, error word, shape.</summary>
    delegate void KernelLauncher<TX, TY, TW>(AcceleratorStream stream, KernelConfig config, ArrayView<TX> x, ArrayView<Vec16> xVectors,
        ArrayView<TY> y, ArrayView<float> bias, ArrayView<TW> data, ArrayView<Vec16> chunks, ArrayView<float> fp8Scales,
        ArrayView<BFloat16> scales, ArrayView<BFloat16> zeros, ArrayView<int> offsets, ArrayView<int> errorWord, Shape s)
        where TX : unmanaged where TY : unmanaged where TW : unmanaged;
    readonly Lazy<Dummies> _dummies = new(() => new Dummies(runtime.Accelerator));

    /// <summary>One-element buffers for the views a scheme does not use (ILGPU is passed valid views only).</summary>
    sealed class Dummies(Accelerator accelerator)
    {
        public readonly MemoryBuffer1D<float, Stride1D.Dense> F32 = accelerator.Allocate1D<float>(1);
        public readonly MemoryBuffer1D<BFloat16, Stride1D.Dense> Bf16 = accelerator.Allocate1D<BFloat16>(1);
        public readonly MemoryBuffer1D<Vec16, Stride1D.Dense> Chunks = accelerator.Allocate1D<Vec16>(1);
        public readonly MemoryBuffer1D<int, Stride1D.Dense> Ints = accelerator.Allocate1D<int>(1);
    }

    /// <summary>y [rows, out] = x [rows, in] @ W^T (+ bias); x and y rank 2, rows strided.</summary>
    public void Linear(DeviceTensor x, WeightMatrix w, DeviceView<float> bias, DeviceTensor y) =>
        Run(x, x.Stride(0), 0, y, y.Stride(0), 0, (int)x.Dim(0), 1, w, bias, transpose: false);

    /// <summary>y [rows, w.Rows / 2] = silu(x @ gate^T) * (x @ up^T), gate = w's first half of rows (Count 1); x and y rank 2, rows strided.</summary>
    public void LinearSiluMul(DeviceTensor x, WeightMatrix w, DeviceTensor y) =>
        Run(x, x.Stride(0), 0, y, y.Stride(0), 0, (int)x.Dim(0), 1, w, default, transpose: false, siluMul: true);

    /// <summary>y[t, h, :] = W[h] @ x[t, h, :] (or W[h]^T @ x[t, h, :]); x and y rank 3 [tokens, heads, features].</summary>
    public void Headwise(DeviceTensor x, WeightMatrix w, DeviceTensor y, bool transpose) =>
        Run(x, x.Stride(0), x.Stride(1), y, y.Stride(0), y.Stride(1), (int)x.Dim(0), (int)x.Dim(1), w, default, transpose);

    /// <summary>
    /// GroupedLinear (and with <paramref name="siluMul"/> GroupedLinearSiluMul): y[r, :] = x[r, :] @ W[e]^T for r in
    /// offsets[e] .. offsets[e + 1]; x [m, w.Cols] dense, y [m, out] rows strided. The same kernels as Linear: each row tile
    /// lies inside one expert's rows and reads matrix e (see <see cref="ExpertTile"/>); the offsets are checked in every group
    /// before anything is written.
    /// </summary>
    public void Grouped(DeviceTensor x, DeviceView<int> offsets, WeightMatrix w, DeviceTensor y, int m, bool siluMul)
    {
        var site = siluMul ? DeviceErrorSite.GroupedLinearSiluMulOffsets : DeviceErrorSite.GroupedLinearOffsets;
        Run(x, w.Cols, 0, y, y.Stride(0), 0, m, 1, w, default, transpose: false, siluMul, offsets, site.Id);
    }

    void Run(DeviceTensor x, long xRowStride, long xBatchStride, DeviceTensor y, long yRowStride, long yBatchStride, int m, int batch,
        WeightMatrix w, DeviceView<float> bias, bool transpose, bool siluMul = false, DeviceView<int> offsets = default, int site = 0)
    {
        bool grouped = !offsets.IsNull;
        int outFeatures = transpose ? w.Cols : w.Rows;
        var shape = new Shape
        {
            M = m, Batch = batch, N = siluMul ? outFeatures / 2 : outFeatures, K = transpose ? w.Rows : w.Cols, Transpose = transpose ? 1 : 0,
            SiluMul = siluMul ? 1 : 0,
            PerBatchWeight = !grouped && w.Count == batch && batch > 1 ? 1 : 0, HasBias = bias.IsNull ? 0 : 1,
            Experts = grouped ? w.Count : 0, Site = site,
            XRowStride = xRowStride, XBatchStride = xBatchStride, YRowStride = yRowStride, YBatchStride = yBatchStride,
            W = WeightShape.Of(w),
        };
        switch ((x.ElementType, y.ElementType))
        {
            case (ElementType.F32, ElementType.F32): Run<float, float>(x, y, w, bias, offsets, shape); break;
            case (ElementType.F32, ElementType.BF16): Run<float, BFloat16>(x, y, w, bias, offsets, shape); break;
            case (ElementType.BF16, ElementType.F32): Run<BFloat16, float>(x, y, w, bias, offsets, shape); break;
            default: Run<BFloat16, BFloat16>(x, y, w, bias, offsets, shape); break;
        }
    }

    void Run<TX, TY>(DeviceTensor x, DeviceTensor y, WeightMatrix w, DeviceView<float> bias, DeviceView<int> offsets, Shape shape)
        where TX : unmanaged where TY : unmanaged
    {
        var d = _dummies.Value;
        var fp8Scales = w.ElementType == ElementType.Fp8E4M3 ? w.ScaleInv.IlgpuView : d.F32.View;
        var scales = w.ElementType == ElementType.Int4 ? w.Int4Scales.IlgpuView : d.Bf16.View;
        var zeros = w.ElementType == ElementType.Int4 ? w.Int4Zeros.IlgpuView : d.Bf16.View;
        switch (w.ElementType)
        {
            case ElementType.F32: Launch<TX, TY, float>(x, y, w, w.F32, bias, fp8Scales, scales, zeros, offsets, shape); break;
            case ElementType.BF16: Launch<TX, TY, BFloat16>(x, y, w, w.BF16, bias, fp8Scales, scales, zeros, offsets, shape); break;
            case ElementType.Fp8E4M3: Launch<TX, TY, Float8E4M3>(x, y, w, w.Fp8Data, bias, fp8Scales, scales, zeros, offsets, shape); break;
            default: Launch<TX, TY, Int4x2>(x, y, w, w.Int4Data, bias, fp8Scales, scales, zeros, offsets, shape); break;
        }
    }

    void Launch<TX, TY, TW>(DeviceTensor x, DeviceTensor y, WeightMatrix w, DeviceView<TW> data, DeviceView<float> bias,
        ArrayView<float> fp8Scales, ArrayView<BFloat16> scales, ArrayView<BFloat16> zeros, DeviceView<int> offsets, Shape s)
        where TX : unmanaged where TY : unmanaged where TW : unmanaged
    {
        var accelerator = runtime.Accelerator;
        runtime.Bind();
        var d = _dummies.Value;
        ArrayView<float> biasView = bias.IsNull ? d.F32.View : bias.IlgpuView;
        // the CPU accelerator's gemv keeps every lane's partial sums in shared memory sized for warps of up to 4 lanes; the
        // gemv's group is GemvWarps warps, more than a simulated group of few threads holds (a GPU's holds 1,024)
        bool gemv = UsesGemv(w, s.M, s.Transpose != 0)
            && GemvWarps * accelerator.WarpSize <= accelerator.MaxNumThreadsPerGroup
            && (runtime.IsCuda || (1 + s.SiluMul) * CpuFeaturesPerWarp * GemvWarps * accelerator.WarpSize * RowTile <= GemvPartials);
        var kernel = (KernelLauncher<TX, TY, TW>)_kernels.GetOrAdd((gemv, typeof(TX), typeof(TY), typeof(TW)), key => Load<TX, TY, TW>(key.Gemv, w));
        bool grouped = s.Experts > 0;
        KernelConfig config;
        ArrayView<Vec16> chunks = d.Chunks.View, xVectors = d.Chunks.View;
        var xView = ViewOf<TX>(x);
        if (gemv)
        {
            int sms = runtime.IsCuda ? accelerator.NumMultiprocessors : CpuSmCount;
            // grouped: the row tiles of the experts that have rows stand for the batch (at most min(M, experts) of them)
            s.Split = SplitK(s.N, grouped ? Math.Min(s.M, s.Experts) : s.Batch, sms);
            s.RowTiles = GroupedTiles(s.M, RowTile, s.Experts);
            s.FeaturesPerWarp = runtime.IsCuda ? 1 : CpuFeaturesPerWarp;
            int features = GemvWarps / s.Split * s.FeaturesPerWarp;
            chunks = data.IlgpuView.AsContiguous().Cast<Vec16>();
            if (XVectorLoads(x, s, w))
            {
                s.XVectors = 1;
                xVectors = xView.Cast<Vec16>();
            }
            config = new KernelConfig(new Index2D((s.N + features - 1) / features, s.RowTiles * s.Batch),
                new Index2D(GemvWarps * accelerator.WarpSize, 1));
        }
        else
        {
            s.Tile = TileFor(accelerator);
            s.TileK = TileK * MaxTile / s.Tile; // the CPU accelerator's small groups take longer steps: fewer barriers
            s.RowTiles = GroupedTiles(s.M, s.Tile, s.Experts);
            int threads = s.Tile / 4 * (s.Tile / 4);
            // a grouped launch finds its tile with warp shuffles (TileOf), which need whole warps; only a simulated shape
            // (a CPU accelerator's group of one 32-lane warp: a 16-thread tile) can break this, a GPU's groups hold 1,024
            if (grouped && threads % accelerator.WarpSize != 0)
                throw new InvalidOperationException($"LinearIlgpu: the grouped tiled kernel's group of {threads} threads is not whole " +
                    $"{accelerator.WarpSize}-lane warps (the accelerator's groups hold {accelerator.MaxNumThreadsPerGroup} threads); " +
                    "simulate at least two warps per group.");
            // with SiLU-and-mul a group's tile holds tile / 2 gate rows and the matching up rows: tile / 2 outputs
            int outputsPerGroup = s.SiluMul != 0 ? s.Tile / 2 : s.Tile;
            config = new KernelConfig(new Index2D((s.N + outputsPerGroup - 1) / outputsPerGroup, s.RowTiles * s.Batch), new Index2D(threads, 1));
        }
        kernel(runtime.Stream, config, xView, xVectors, ViewOf<TY>(y), biasView, data.IlgpuView, chunks, fp8Scales, scales, zeros,
            grouped ? offsets.IlgpuView : d.Ints.View, grouped ? runtime.Errors.Word.View.IlgpuView : d.Ints.View, s);
    }

    /// <summary>
    /// Row tiles of <paramref name="tile"/> rows: ceil(m / tile); grouped (experts &gt; 0), a bound on the tiles of every
    /// split of m rows into experts' ranges: each expert that has rows adds at most one partial tile.
    /// </summary>
    static int GroupedTiles(int m, int tile, int experts) => (m + tile - 1) / tile + (experts > 0 ? Math.Min(m, experts) : 0);

    /// <summary>
    /// Whether the gemv reads x in 16-byte loads: x starts 16-byte aligned, its row and batch strides are whole 16-byte units,
    /// and a weight part (8 elements, 4 for f32 weights) spans whole 16-byte units of x (not so for bf16 x with f32 weights).
    /// The products and their order are the same either way.
    /// </summary>
    internal static bool XVectorLoads(DeviceTensor x, Shape s, WeightMatrix w)
    {
        int lanes = 16 / x.ElementSize;
        int partElements = w.ElementType == ElementType.F32 ? 4 : 8;
        return x.Pointer % 16 == 0 && s.XRowStride % lanes == 0 && s.XBatchStride % lanes == 0 && partElements % lanes == 0;
    }

    /// <summary>
    /// Whether a request takes the gemv: not transposed, at most 64 rows per batch entry, and weight rows of whole 16-byte
    /// chunks from a 16-byte-aligned base (FP8: scale blocks whole chunks wide; INT4 groups always are).
    /// </summary>
    internal static bool UsesGemv(WeightMatrix w, int m, bool transpose)
    {
        if (transpose || m > GemvMaxRows)
            return false;
        return w.ElementType switch
        {
            ElementType.F32 => w.Cols % 4 == 0 && w.F32.Pointer % 16 == 0,
            ElementType.BF16 => w.Cols % 8 == 0 && w.BF16.Pointer % 16 == 0,
            ElementType.Fp8E4M3 => w.Cols % 16 == 0 && w.BlockCols % 16 == 0 && w.Fp8Data.Pointer % 16 == 0,
            _ => w.Int4Data.Pointer % 16 == 0,
        };
    }

    /// <summary>
    /// Split-K factor: the largest S in {1, 2, 4} such that the grid at S / 2 still has fewer than 2 * SMs groups (a group
    /// holds 4 / S features). It depends on out and the batch only, never on m, so rows do not depend on their batch.
    /// </summary>
    internal static int SplitK(int outFeatures, int batch, int sms)
    {
        long Groups(int split) => ((long)outFeatures * split + GemvWarps - 1) / GemvWarps * batch;
        return Groups(2) < 2L * sms ? 4 : Groups(1) < 2L * sms ? 2 : 1;
    }

    /// <summary>The tiled kernel's tile: 64 where a group may have 256 threads, else the largest of 32 and 16 that fits.</summary>
    static int TileFor(Accelerator accelerator)
    {
        int max = accelerator.MaxNumThreadsPerGroup;
        return max >= 256 ? 64 : max >= 64 ? 32 : 16;
    }

    /// <summary>The elements of a tensor from its first to its last, as an ILGPU view (strides are applied in the kernel).</summary>
    internal static ArrayView<T> ViewOf<T>(DeviceTensor t) where T : unmanaged
    {
        var buffer = (DeviceBuffer<T>)t.Allocation!;
        return buffer.IlgpuWhole.SubView(t.Offset, t.LastElement - t.Offset + 1);
    }

    Delegate Load<TX, TY, TW>(bool gemv, WeightMatrix w) where TX : unmanaged where TY : unmanaged where TW : unmanaged
    {
        var (element, decoder) = WeightDecoders.For(w);
        var method = typeof(LinearIlgpu).GetMethod(gemv ? nameof(GemvKernel) : nameof(TiledKernel), BindingFlags.NonPublic | BindingFlags.Static)!
            .MakeGenericMethod(typeof(TX), ElementCodecs.CodecFor(typeof(TX)), VectorCodecs.ActivationFor(typeof(TX))!, typeof(TY),
                ElementCodecs.CodecFor(typeof(TY)), element, decoder);
        var type = typeof(Action<ArrayView<TX>, ArrayView<Vec16>, ArrayView<TY>, ArrayView<float>, ArrayView<TW>, ArrayView<Vec16>, ArrayView<float>,
            ArrayView<BFloat16>, ArrayView<BFloat16>, ArrayView<int>, ArrayView<int>, Shape>);
        var launcher = runtime.Accelerator.LoadKernel((Action<ArrayView<TX>, ArrayView<Vec16>, ArrayView<TY>, ArrayView<float>, ArrayView<TW>,
            ArrayView<Vec16>, ArrayView<float>, ArrayView<BFloat16>, ArrayView<BFloat16>, ArrayView<int>, ArrayView<int>, Shape>)method.CreateDelegate(type));
        return new KernelLauncher<TX, TY, TW>((stream, config, x, xv, y, bias, data, chunks, f, sc, z, o, e, s) =>
            launcher(stream, config, x, xv, y, bias, data, chunks, f, sc, z, o, e, s));
    }

    /// <summary>Where a group's row tile lies: batch entry, weight matrix (-1: the group has nothing to do), first row, end of its rows.</summary>
    internal struct TilePlace
    {
        public long Batch, Matrix;
        public long Row0;
        public int RowEnd;
    }

    /// <summary>
    /// The row tile of this group (grid.y): Linear, tile y % RowTiles of batch entry y / RowTiles; grouped, the y-th tile of
    /// the experts' row ranges in expert order (<see cref="ExpertTile"/>), after every warp has checked the offsets (each in
    /// [0, M], then not decreasing: the reference's order; group (0, 0) reports the first bad one). Uniform over the group.
    /// </summary>
    static TilePlace TileOf(ArrayView<int> offsets, ArrayView<int> errorWord, Shape s, int tileRows)
    {
        if (s.Experts == 0)
        {
            long b = Grid.IdxY / s.RowTiles;
            return new TilePlace
            {
                Batch = b, Matrix = s.PerBatchWeight != 0 ? b : 0, Row0 = (long)(Grid.IdxY % s.RowTiles) * tileRows, RowEnd = s.M,
            };
        }
        var none = new TilePlace { Matrix = -1 };
        int count = s.Experts + 1;
        int bad = DeviceIndexChecks.FirstOutOfRange(offsets, 0, count, s.M + 1L);
        bool outOfOrder = false;
        if (bad < 0)
        {
            bad = DeviceIndexChecks.FirstDecrease(offsets, count);
            outOfOrder = true;
        }
        if (bad >= 0)
        {
            if (Grid.IdxX == 0 && Grid.IdxY == 0 && Warp.WarpIdx == 0)
                DeviceIndexChecks.Report(errorWord, s.Site, bad, offsets[bad], outOfOrder ? count : s.M + 1L, outOfOrder);
            return none;
        }
        int expert = ExpertTile(offsets, s.Experts, tileRows, Grid.IdxY, out int row0, out int rowEnd);
        return expert < 0 ? none : new TilePlace { Batch = 0, Matrix = expert, Row0 = row0, RowEnd = rowEnd };
    }

    /// <summary>
    /// The expert whose rows hold row tile <paramref name="tile"/> when each expert's rows offsets[e] .. offsets[e + 1] are cut
    /// into tiles of <paramref name="tileRows"/> from its first row, in expert order; its first row and the expert's end row;
    /// -1 past the last tile. One warp, lanes over experts W at a time (an inclusive scan of tile counts by shuffles); every lane
    /// makes the call and gets the same answer. Offsets valid (checked before).
    /// </summary>
    internal static int ExpertTile(ArrayView<int> offsets, int experts, int tileRows, int tile, out int row0, out int rowEnd)
    {
        int lane = Warp.LaneIdx, width = Warp.WarpSize;
        int before = 0; // tiles of the experts already passed
        for (int start = 0; start < experts; start += width)
        {
            int e = start + lane;
            int tiles = e < experts ? (offsets[e + 1] - offsets[e] + tileRows - 1) / tileRows : 0;
            int inclusive = tiles;
            for (int delta = 1; delta < width; delta *= 2)
            {
                int up = Warp.ShuffleUp(inclusive, delta);
                if (lane >= delta)
                    inclusive += up;
            }
            int total = Warp.Shuffle(inclusive, width - 1);
            if (tile < before + total)
            {
                int local = tile - before;
                int hit = WarpReduce.Min(local >= inclusive - tiles && local < inclusive ? lane : width);
                int skipped = Warp.Shuffle(inclusive - tiles, hit);
                int expert = start + hit;
                row0 = offsets[expert] + (local - skipped) * tileRows;
                rowEnd = offsets[expert + 1];
                return expert;
            }
            before += total;
        }
        row0 = 0;
        rowEnd = 0;
        return -1;
    }

    // ---------------------------------------------------------------------------------------------------------------
    // gemv. Group = 4 warps; warp v serves feature slot v / S with split index v % S; grid (features / (4 / S), row tiles * batch).
    // x [batch, m, in] and y [batch, m, out] through their strides; chunks: the weight as 16-byte chunks, [count, out, in / E].
    static void GemvKernel<TX, TXC, TXV, TY, TYC, TW, TD>(ArrayView<TX> x, ArrayView<Vec16> xVectors, ArrayView<TY> y, ArrayView<float> bias,
        ArrayView<TW> data, ArrayView<Vec16> chunks, ArrayView<float> fp8Scales, ArrayView<BFloat16> scales, ArrayView<BFloat16> zeros,
        ArrayView<int> offsets, ArrayView<int> errorWord, Shape s)
        where TX : unmanaged where TXC : struct, IElementCodec<TX> where TXV : struct, IActivationVector
        where TY : unmanaged where TYC : struct, IElementCodec<TY>
        where TW : unmanaged where TD : struct, IWeightDecoder<TW>
    {
        chunks = chunks.AsAligned(16); // one 16-byte load per chunk (ld.global.v4.u32)
        var partials = SharedMemory.Allocate<float>(GemvPartials);
        int warpSize = Warp.WarpSize, warp = Warp.WarpIdx, lane = Warp.LaneIdx;
        int split = s.Split, perWarp = s.FeaturesPerWarp;
        int slot = warp / split, part = warp % split;
        long first = ((long)Grid.IdxX * (GemvWarps / split) + slot) * perWarp;
        var place = TileOf(offsets, errorWord, s, RowTile);
        if (place.Matrix < 0)
            return; // past the last row tile, or bad offsets: the whole group leaves
        long b = place.Batch, matrix = place.Matrix, row0 = place.Row0;
        int rows = place.RowEnd - row0 < RowTile ? (int)(place.RowEnd - row0) : RowTile;

        if (CudaAsm.IsSupported)
        {
            // one feature per warp; every lane of a warp serves it, so whole warps take part in the shuffles
            long n = first;
            Lanes8 a = n < s.N
                ? FeatureSums<TX, TXC, TXV, TW, TD>(x, xVectors, chunks, fp8Scales, scales, zeros, s, n, b, matrix, row0, rows, part + split * lane, warpSize * split)
                : default;
            a.F0 = WarpReduce.Sum(a.F0); a.F1 = WarpReduce.Sum(a.F1); a.F2 = WarpReduce.Sum(a.F2); a.F3 = WarpReduce.Sum(a.F3);
            a.F4 = WarpReduce.Sum(a.F4); a.F5 = WarpReduce.Sum(a.F5); a.F6 = WarpReduce.Sum(a.F6); a.F7 = WarpReduce.Sum(a.F7);
            if (lane == 0)
                Put(partials, warp * RowTile, a);
            if (s.SiluMul != 0)
            {
                // the up projection's row N + n, the same lanes and order; its sums after the gate's
                Lanes8 u = n < s.N
                    ? FeatureSums<TX, TXC, TXV, TW, TD>(x, xVectors, chunks, fp8Scales, scales, zeros, s, s.N + n, b, matrix, row0, rows, part + split * lane, warpSize * split)
                    : default;
                u.F0 = WarpReduce.Sum(u.F0); u.F1 = WarpReduce.Sum(u.F1); u.F2 = WarpReduce.Sum(u.F2); u.F3 = WarpReduce.Sum(u.F3);
                u.F4 = WarpReduce.Sum(u.F4); u.F5 = WarpReduce.Sum(u.F5); u.F6 = WarpReduce.Sum(u.F6); u.F7 = WarpReduce.Sum(u.F7);
                if (lane == 0)
                    Put(partials, (GemvWarps + warp) * RowTile, u);
            }
            Group.Barrier();
            if (part == 0 && n < s.N)
            {
                for (int r = lane; r < rows; r += warpSize)
                {
                    float total = partials[warp * RowTile + r], up = 0f;
                    for (int q = 1; q < split; q++)
                        total += partials[(warp + q) * RowTile + r];
                    if (s.SiluMul != 0)
                    {
                        up = partials[(GemvWarps + warp) * RowTile + r];
                        for (int q = 1; q < split; q++)
                            up += partials[(GemvWarps + warp + q) * RowTile + r];
                    }
                    StoreGemv<TY, TYC>(y, bias, s, b, row0 + r, n, total, up);
                }
            }
            return;
        }

        // The CPU accelerator: a group is OS threads and each barrier (a shuffle is one too) costs them all, so a warp serves
        // several features in turn, every lane leaves its partial sums in shared memory, and after the group's one barrier
        // lane r of a feature's first warp adds row r's over the feature's lanes in order.
        for (int f = 0; f < perWarp; f++)
        {
            long n = first + f;
            Lanes8 a = n < s.N
                ? FeatureSums<TX, TXC, TXV, TW, TD>(x, xVectors, chunks, fp8Scales, scales, zeros, s, n, b, matrix, row0, rows, part + split * lane, warpSize * split)
                : default;
            Put(partials, (f * Group.DimX + Group.IdxX) * RowTile, a);
            if (s.SiluMul != 0)
            {
                Lanes8 u = n < s.N
                    ? FeatureSums<TX, TXC, TXV, TW, TD>(x, xVectors, chunks, fp8Scales, scales, zeros, s, s.N + n, b, matrix, row0, rows, part + split * lane, warpSize * split)
                    : default;
                Put(partials, ((perWarp + f) * Group.DimX + Group.IdxX) * RowTile, u);
            }
        }
        Group.Barrier();
        if (part != 0)
            return;
        for (int f = 0; f < perWarp; f++)
        {
            long n = first + f;
            if (n >= s.N)
                break;
            for (int r = lane; r < rows; r += warpSize)
            {
                float total = 0f, up = 0f;
                for (int l = 0; l < warpSize * split; l++)
                    total += partials[(f * Group.DimX + warp * warpSize + l) * RowTile + r];
                if (s.SiluMul != 0)
                {
                    for (int l = 0; l < warpSize * split; l++)
                        up += partials[((perWarp + f) * Group.DimX + warp * warpSize + l) * RowTile + r];
                }
                StoreGemv<TY, TYC>(y, bias, s, b, row0 + r, n, total, up);
            }
        }
    }

    /// <summary>
    /// One lane's partial sums of feature n for the rows row0 .. row0 + rows - 1 of batch entry b (F0 = row0): the chunks
    /// first, first + stride, ... of the feature's weight row, each loaded once, dequantised once and multiplied into every row.
    /// </summary>
    static Lanes8 FeatureSums<TX, TXC, TXV, TW, TD>(ArrayView<TX> x, ArrayView<Vec16> xVectors, ArrayView<Vec16> chunks,
        ArrayView<float> fp8Scales, ArrayView<BFloat16> scales, ArrayView<BFloat16> zeros, Shape s, long n, long b, long matrix, long row0,
        int rows, int first, int stride)
        where TX : unmanaged where TXC : struct, IElementCodec<TX> where TXV : struct, IActivationVector
        where TW : unmanaged where TD : struct, IWeightDecoder<TW>
    {
        TD decoder = default;
        float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f, a4 = 0f, a5 = 0f, a6 = 0f, a7 = 0f;
        int elements = decoder.ChunkElements;
        int parts = elements >= 8 ? elements / 8 : 1;
        int chunksPerRow = s.K / elements;
        long rowChunks = (matrix * s.W.Rows + n) * chunksPerRow; // a matrix has W.Rows rows (2N with SiLU-and-mul)
        long xr = s.XRowStride;
        long x0 = b * s.XBatchStride + row0 * xr;
        for (int c = first; c < chunksPerRow; c += stride)
        {
            Vec16 raw = chunks[rowChunks + c];
            long k0 = (long)c * elements;
            var scale = decoder.Scale(fp8Scales, scales, zeros, s.W, matrix, n, k0);
            for (int p = 0; p < parts; p++)
            {
                Lanes8 wv = decoder.Part(raw, p, scale);
                long k = x0 + k0 + 8 * p;
                a0 = RowDot<TX, TXC, TXV>(wv, elements, x, xVectors, s.XVectors, k, a0);
                if (rows > 1) a1 = RowDot<TX, TXC, TXV>(wv, elements, x, xVectors, s.XVectors, k + xr, a1);
                if (rows > 2) a2 = RowDot<TX, TXC, TXV>(wv, elements, x, xVectors, s.XVectors, k + 2 * xr, a2);
                if (rows > 3) a3 = RowDot<TX, TXC, TXV>(wv, elements, x, xVectors, s.XVectors, k + 3 * xr, a3);
                if (rows > 4) a4 = RowDot<TX, TXC, TXV>(wv, elements, x, xVectors, s.XVectors, k + 4 * xr, a4);
                if (rows > 5) a5 = RowDot<TX, TXC, TXV>(wv, elements, x, xVectors, s.XVectors, k + 5 * xr, a5);
                if (rows > 6) a6 = RowDot<TX, TXC, TXV>(wv, elements, x, xVectors, s.XVectors, k + 6 * xr, a6);
                if (rows > 7) a7 = RowDot<TX, TXC, TXV>(wv, elements, x, xVectors, s.XVectors, k + 7 * xr, a7);
            }
        }
        return new Lanes8 { F0 = a0, F1 = a1, F2 = a2, F3 = a3, F4 = a4, F5 = a5, F6 = a6, F7 = a7 };
    }

    static void Put(ArrayView<float> partials, int at, Lanes8 a)
    {
        partials[at] = a.F0; partials[at + 1] = a.F1; partials[at + 2] = a.F2; partials[at + 3] = a.F3;
        partials[at + 4] = a.F4; partials[at + 5] = a.F5; partials[at + 6] = a.F6; partials[at + 7] = a.F7;
    }

    /// <summary>y[b, row, n] = round(total + bias[n]), or with SiLU-and-mul round(silu(total) * up) (no bias).</summary>
    static void StoreGemv<TY, TYC>(ArrayView<TY> y, ArrayView<float> bias, Shape s, long b, long row, long n, float total, float up)
        where TY : unmanaged where TYC : struct, IElementCodec<TY>
    {
        TYC yc = default;
        if (s.HasBias != 0)
            total += bias[n];
        if (s.SiluMul != 0)
            total = Silu(total) * up;
        y[b * s.YBatchStride + row * s.YRowStride + n] = yc.Store(total);
    }

    /// <summary>silu(g) = g / (1 + exp(-g)), as the reference and ElementwiseIlgpu compute it.</summary>
    static float Silu(float g) => g / (1f + XMath.Exp(-g));

    /// <summary>acc + w . x[at ..] (<see cref="Dot"/>), x read in 16-byte loads (<see cref="DotVectors"/>) where the launch says so.</summary>
    static float RowDot<TX, TXC, TXV>(Lanes8 w, int elements, ArrayView<TX> x, ArrayView<Vec16> xVectors, int vectors, long at, float acc)
        where TX : unmanaged where TXC : struct, IElementCodec<TX> where TXV : struct, IActivationVector =>
        vectors != 0 ? DotVectors<TXV>(w, elements, xVectors, at, acc) : Dot<TX, TXC>(w, elements, x, at, acc);

    /// <summary>
    /// <see cref="Dot"/> with x read as 16-byte units (element <paramref name="at"/> starts one): the same products, added in
    /// the same order.
    /// </summary>
    static float DotVectors<TXV>(Lanes8 w, int elements, ArrayView<Vec16> xVectors, long at, float acc) where TXV : struct, IActivationVector
    {
        TXV a = default;
        int lanes = a.Lanes;
        Lanes8 x0 = a.Unpack(xVectors[at / lanes]);
        acc += w.F0 * x0.F0;
        acc += w.F1 * x0.F1;
        acc += w.F2 * x0.F2;
        acc += w.F3 * x0.F3;
        if (elements >= 8)
        {
            // bf16: the same unit holds elements 4..7; f32: the next one does
            Lanes8 x1 = lanes == 8 ? x0 : a.Unpack(xVectors[at / lanes + 1]);
            float e4 = lanes == 8 ? x1.F4 : x1.F0, e5 = lanes == 8 ? x1.F5 : x1.F1;
            float e6 = lanes == 8 ? x1.F6 : x1.F2, e7 = lanes == 8 ? x1.F7 : x1.F3;
            acc += w.F4 * e4;
            acc += w.F5 * e5;
            acc += w.F6 * e6;
            acc += w.F7 * e7;
        }
        return acc;
    }

    /// <summary>acc + w . x[at .. at + width) with width = min(8, chunk elements), multiply-adds in order.</summary>
    static float Dot<TX, TXC>(Lanes8 w, int elements, ArrayView<TX> x, long at, float acc)
        where TX : unmanaged where TXC : struct, IElementCodec<TX>
    {
        TXC xc = default;
        acc += w.F0 * xc.Load(x[at]);
        acc += w.F1 * xc.Load(x[at + 1]);
        acc += w.F2 * xc.Load(x[at + 2]);
        acc += w.F3 * xc.Load(x[at + 3]);
        if (elements >= 8)
        {
            acc += w.F4 * xc.Load(x[at + 4]);
            acc += w.F5 * xc.Load(x[at + 5]);
            acc += w.F6 * xc.Load(x[at + 6]);
            acc += w.F7 * xc.Load(x[at + 7]);
        }
        return acc;
    }

    // ---------------------------------------------------------------------------------------------------------------
    // tiled: group (tile / 4)^2 threads, grid (ceil(out / tile), row tiles * batch). Thread (tx, ty) owns rows ty * 4 .. + 3 and
    // features tx * 4 .. + 3 of the group's tile. Shared tiles are k-major: xs[kk * tile + row], ws[kk * tile + feature].
    static void TiledKernel<TX, TXC, TXV, TY, TYC, TW, TD>(ArrayView<TX> x, ArrayView<Vec16> xVectors, ArrayView<TY> y, ArrayView<float> bias,
        ArrayView<TW> data, ArrayView<Vec16> chunks, ArrayView<float> fp8Scales, ArrayView<BFloat16> scales, ArrayView<BFloat16> zeros,
        ArrayView<int> offsets, ArrayView<int> errorWord, Shape s)
        where TX : unmanaged where TXC : struct, IElementCodec<TX> where TXV : struct, IActivationVector
        where TY : unmanaged where TYC : struct, IElementCodec<TY>
        where TW : unmanaged where TD : struct, IWeightDecoder<TW>
    {
        TD decoder = default;
        TXC xc = default;
        var xs = SharedMemory.Allocate<float>(TileK * MaxTile);
        var ws = SharedMemory.Allocate<float>(TileK * MaxTile);
        int tile = s.Tile, tileK = s.TileK, threads = Group.DimX, t = Group.IdxX;
        int perRow = tile / 4;
        int tx = t % perRow, ty = t / perRow;
        // With SiLU-and-mul the tile's features f < tile / 2 are gate rows n0 + f and the rest up rows N + n0 + f - tile / 2,
        // for the group's tile / 2 outputs n0 ..; after the k loop the gate and up sums of an output meet in shared memory.
        int halfTile = tile / 2;
        long n0 = (long)Grid.IdxX * (s.SiluMul != 0 ? halfTile : tile);
        var place = TileOf(offsets, errorWord, s, tile);
        if (place.Matrix < 0)
            return; // past the last row tile, or bad offsets: the whole group leaves
        long b = place.Batch, matrix = place.Matrix, m0 = place.Row0;
        int rowEnd = place.RowEnd; // grouped: rows past the tile's expert belong to another matrix
        long xBase = b * s.XBatchStride;
        int elements = tile * tileK;

        float c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f, c10 = 0f, c11 = 0f, c12 = 0f, c13 = 0f;
        float c20 = 0f, c21 = 0f, c22 = 0f, c23 = 0f, c30 = 0f, c31 = 0f, c32 = 0f, c33 = 0f;
        for (long k0 = 0; k0 < s.K; k0 += tileK)
        {
            // x tile: k fastest (a row's in features are contiguous)
            for (int e = t; e < elements; e += threads)
            {
                int kk = e % tileK, r = e / tileK;
                long row = m0 + r, k = k0 + kk;
                xs[kk * tile + r] = row < rowEnd && k < s.K ? xc.Load(x[xBase + row * s.XRowStride + k]) : 0f;
            }
            // W tile, dequantised: along k for W[n, k] as stored, along n for the transposed layout [k, n]
            for (int e = t; e < elements; e += threads)
            {
                int kk, f;
                if (s.Transpose != 0)
                {
                    kk = e / tile;
                    f = e % tile;
                }
                else
                {
                    kk = e % tileK;
                    f = e / tileK;
                }
                long n = n0 + f, k = k0 + kk;
                bool inside = n < s.N;
                if (s.SiluMul != 0)
                {
                    long j = f < halfTile ? n0 + f : n0 + f - halfTile; // the output this feature serves
                    inside = j < s.N;
                    n = f < halfTile ? j : s.N + j;
                }
                float v = 0f;
                if (inside && k < s.K)
                    v = s.Transpose != 0
                        ? decoder.Element(data, fp8Scales, scales, zeros, s.W, matrix, k, n)
                        : decoder.Element(data, fp8Scales, scales, zeros, s.W, matrix, n, k);
                ws[kk * tile + f] = v;
            }
            Group.Barrier();
            for (int kk = 0; kk < tileK; kk++)
            {
                int xa = kk * tile + ty * 4, wa = kk * tile + tx * 4;
                float x0 = xs[xa], x1 = xs[xa + 1], x2 = xs[xa + 2], x3 = xs[xa + 3];
                float w0 = ws[wa], w1 = ws[wa + 1], w2 = ws[wa + 2], w3 = ws[wa + 3];
                c00 += x0 * w0; c01 += x0 * w1; c02 += x0 * w2; c03 += x0 * w3;
                c10 += x1 * w0; c11 += x1 * w1; c12 += x1 * w2; c13 += x1 * w3;
                c20 += x2 * w0; c21 += x2 * w1; c22 += x2 * w2; c23 += x2 * w3;
                c30 += x3 * w0; c31 += x3 * w1; c32 += x3 * w2; c33 += x3 * w3;
            }
            Group.Barrier();
        }

        long r0 = m0 + ty * 4, f0 = n0 + tx * 4;
        if (s.SiluMul != 0)
        {
            // every thread leaves its 4 x 4 sums at [row][feature]; then the threads of the gate half store silu(gate) * up
            var sums = SharedMemory.Allocate<float>(MaxTile * MaxTile);
            int rb = ty * 4, fb = tx * 4;
            sums[rb * tile + fb] = c00; sums[rb * tile + fb + 1] = c01; sums[rb * tile + fb + 2] = c02; sums[rb * tile + fb + 3] = c03;
            sums[(rb + 1) * tile + fb] = c10; sums[(rb + 1) * tile + fb + 1] = c11; sums[(rb + 1) * tile + fb + 2] = c12; sums[(rb + 1) * tile + fb + 3] = c13;
            sums[(rb + 2) * tile + fb] = c20; sums[(rb + 2) * tile + fb + 1] = c21; sums[(rb + 2) * tile + fb + 2] = c22; sums[(rb + 2) * tile + fb + 3] = c23;
            sums[(rb + 3) * tile + fb] = c30; sums[(rb + 3) * tile + fb + 1] = c31; sums[(rb + 3) * tile + fb + 2] = c32; sums[(rb + 3) * tile + fb + 3] = c33;
            Group.Barrier();
            for (int e = t; e < tile * halfTile; e += threads)
            {
                int r = e / halfTile, j = e % halfTile;
                long row = m0 + r, n = n0 + j;
                if (row < rowEnd && n < s.N)
                {
                    TYC yc = default;
                    y[b * s.YBatchStride + row * s.YRowStride + n] = yc.Store(Silu(sums[r * tile + j]) * sums[r * tile + halfTile + j]);
                }
            }
            return;
        }
        StoreRow<TY, TYC>(y, bias, s, b, r0, rowEnd, f0, c00, c01, c02, c03);
        StoreRow<TY, TYC>(y, bias, s, b, r0 + 1, rowEnd, f0, c10, c11, c12, c13);
        StoreRow<TY, TYC>(y, bias, s, b, r0 + 2, rowEnd, f0, c20, c21, c22, c23);
        StoreRow<TY, TYC>(y, bias, s, b, r0 + 3, rowEnd, f0, c30, c31, c32, c33);
    }

    /// <summary>y[b, row, f0 .. f0 + 3] = round(acc + bias), for the rows and features inside the output.</summary>
    static void StoreRow<TY, TYC>(ArrayView<TY> y, ArrayView<float> bias, Shape s, long b, long row, int rowEnd, long f0, float v0, float v1,
        float v2, float v3)
        where TY : unmanaged where TYC : struct, IElementCodec<TY>
    {
        if (row >= rowEnd)
            return;
        long at = b * s.YBatchStride + row * s.YRowStride;
        Store<TY, TYC>(y, bias, s, at, f0, v0);
        Store<TY, TYC>(y, bias, s, at, f0 + 1, v1);
        Store<TY, TYC>(y, bias, s, at, f0 + 2, v2);
        Store<TY, TYC>(y, bias, s, at, f0 + 3, v3);
    }

    static void Store<TY, TYC>(ArrayView<TY> y, ArrayView<float> bias, Shape s, long rowAt, long n, float acc)
        where TY : unmanaged where TYC : struct, IElementCodec<TY>
    {
        if (n >= s.N)
            return;
        TYC yc = default;
        if (s.HasBias != 0)
            acc += bias[n];
        y[rowAt + n] = yc.Store(acc);
    }
}
