using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Reference;

namespace DeepSeekKernels.Cpu;

/// <summary>
/// Decodes a block of a weight matrix to float32 into the packed panel layout <see cref="CpuGemm"/>'s micro-kernels read:
/// W rows [n0, n0 + count) and columns [k0, k0 + kc) as slices of <c>nr</c> W rows, each slice [kc][nr] (one k's nr
/// weights contiguous, so a micro-kernel loads them as vectors and broadcasts x):
/// <c>panel[(j / nr) * kc * nr + k * nr + j % nr] = W[n0 + j, k0 + k]</c>, and 0 for count &lt;= j &lt; count rounded up
/// to nr. The values are exactly the decoded weights of <see cref="WeightData"/>: f32 as stored, bf16 widened, FP8 code
/// times its block scale in float32 rounded once to bf16 (round to nearest even) then widened, INT4 (code - zero) * scale
/// in float32 rounded once to bf16 then widened (<see cref="WeightData.DecodeRowsToBf16"/>). Rows are written in chunks
/// of <see cref="KChunk"/> columns so the panel lines being filled stay in L1.
/// </summary>
internal static unsafe class WeightPanelDecode
{
    const int KChunk = 64;

    static readonly float[] Fp8Values = BuildFp8Table();

    /// <summary>
    /// The panel of W rows [n0, n0 + count), columns [k0, k0 + kc) of matrix 0, in slices of nr rows; FP8 and INT4 decoded with
    /// the vectors of <paramref name="isa"/> (the calling thread's <see cref="CpuIsa.Level"/> by default; a pool thread is
    /// handed its caller's), the same bits at every level.
    /// </summary>
    public static void Decode(in WeightData w, int n0, int count, int k0, int kc, int nr, float* panel, CpuIsaLevel? isa = null)
    {
        var level = isa ?? CpuIsa.Level;
        switch (w.Type)
        {
            case ElementType.F32:
                DecodeF32(w, n0, count, k0, kc, nr, panel);
                break;
            case ElementType.BF16:
                DecodeBf16(w, n0, count, k0, kc, nr, panel);
                break;
            case ElementType.Fp8E4M3:
                DecodeFp8(w, n0, count, k0, kc, nr, panel, level);
                break;
            case ElementType.Int4:
                DecodeInt4(w, n0, count, k0, kc, nr, panel, level);
                break;
            default:
                throw new NotSupportedException($"CpuGemm: weights of type {w.Type} are not supported (f32, bf16, FP8 e4m3, INT4).");
        }
        // the padding rows of the last slice
        int padded = (count + nr - 1) / nr * nr;
        for (int j = count; j < padded; j++)
        {
            float* dst = Slot(panel, j, 0, kc, nr);
            for (int k = 0; k < kc; k++)
                dst[k * nr] = 0f;
        }
    }

    /// <summary>Where W row j (of the panel) at column k (of the block) goes.</summary>
    static float* Slot(float* panel, int j, int k, int kc, int nr) => panel + (long)(j / nr) * kc * nr + (long)k * nr + j % nr;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DecodeF32(in WeightData w, int n0, int count, int k0, int kc, int nr, float* panel)
    {
        for (int s = 0; s < count; s += nr)
        {
            int rowsInSlice = Math.Min(nr, count - s);
            for (int c = 0; c < kc; c += KChunk)
            {
                int len = Math.Min(KChunk, kc - c);
                for (int j = s; j < s + rowsInSlice; j++)
                {
                    float* src = (float*)w.Data + (long)(n0 + j) * w.Cols + k0 + c;
                    float* dst = Slot(panel, j, c, kc, nr);
                    for (int k = 0; k < len; k++)
                        dst[k * nr] = src[k];
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DecodeBf16(in WeightData w, int n0, int count, int k0, int kc, int nr, float* panel)
    {
        for (int s = 0; s < count; s += nr)
        {
            int rowsInSlice = Math.Min(nr, count - s);
            for (int c = 0; c < kc; c += KChunk)
            {
                int len = Math.Min(KChunk, kc - c);
                for (int j = s; j < s + rowsInSlice; j++)
                {
                    ushort* src = (ushort*)w.Data + (long)(n0 + j) * w.Cols + k0 + c;
                    uint* dst = (uint*)Slot(panel, j, c, kc, nr);
                    for (int k = 0; k < len; k++)
                        dst[k * nr] = (uint)src[k] << 16;
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DecodeFp8(in WeightData w, int n0, int count, int k0, int kc, int nr, float* panel, CpuIsaLevel isa)
    {
        int scaleCols = w.ScaleCols, blockCols = w.BlockCols;
        float* run = stackalloc float[KChunk];
        fixed (float* table = Fp8Values)
        {
            for (int s = 0; s < count; s += nr)
            {
                int rowsInSlice = Math.Min(nr, count - s);
                for (int c = 0; c < kc; c += KChunk)
                {
                    int len = Math.Min(KChunk, kc - c);
                    for (int j = s; j < s + rowsInSlice; j++)
                    {
                        int row = n0 + j;
                        byte* codes = (byte*)w.Data + (long)row * w.Cols;
                        float* scales = (float*)w.Scales + (long)(row / w.BlockRows) * scaleCols;
                        uint* dst = (uint*)Slot(panel, j, c, kc, nr);
                        int col = k0 + c, end = col + len;
                        // the row's columns decoded in runs that share a scale block, contiguous in `run`, then laid out nr apart
                        while (col < end)
                        {
                            int block = col / blockCols;
                            int blockEnd = Math.Min(end, (block + 1) * blockCols);
                            DecodeFp8Run(codes, col, blockEnd, scales[block], table, run + (col - k0 - c), isa);
                            col = blockEnd;
                        }
                        for (int i = 0; i < len; i++, dst += nr)
                            *dst = ((uint*)run)[i];
                    }
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DecodeInt4(in WeightData w, int n0, int count, int k0, int kc, int nr, float* panel, CpuIsaLevel isa)
    {
        int groups = w.GroupsPerRow, groupSize = w.GroupSize;
        float* run = stackalloc float[KChunk];
        for (int s = 0; s < count; s += nr)
        {
            int rowsInSlice = Math.Min(nr, count - s);
            for (int c = 0; c < kc; c += KChunk)
            {
                int len = Math.Min(KChunk, kc - c);
                for (int j = s; j < s + rowsInSlice; j++)
                {
                    int row = n0 + j;
                    byte* codes = (byte*)w.Data + (long)row * (w.Cols / 2);
                    ushort* scales = (ushort*)w.Scales + (long)row * groups, zeros = (ushort*)w.Zeros + (long)row * groups;
                    // the row's columns decoded in runs that share a group, contiguous in `run`, then laid out nr apart
                    int col = k0 + c, end = col + len;
                    while (col < end)
                    {
                        int g = col / groupSize;
                        int groupEnd = Math.Min(end, (g + 1) * groupSize);
                        float scale = BitConverter.UInt32BitsToSingle((uint)scales[g] << 16);
                        float zero = BitConverter.UInt32BitsToSingle((uint)zeros[g] << 16);
                        DecodeInt4Run(codes, col, groupEnd, scale, zero, run + (col - k0 - c), isa);
                        col = groupEnd;
                    }
                    float* dst = Slot(panel, j, c, kc, nr);
                    for (int i = 0; i < len; i++, dst += nr)
                        *dst = run[i];
                }
            }
        }
    }

    /// <summary>
    /// INT4 columns [col, end) of one row, all in one group: (code - zero) * scale in float32, rounded once to bf16 (round
    /// to nearest even; NaN stays NaN with its quiet bit set, as <see cref="BFloat16.RoundToBits"/>), widened into
    /// destination[0, end - col). 16 columns at a time with AVX-512, 8 with AVX2, then one by one: the same two float32
    /// operations in every lane, so the same bits whichever path runs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void DecodeInt4Run(byte* codes, int col, int end, float scale, float zero, float* destination, CpuIsaLevel isa)
    {
        int i = col;
        if ((i & 1) == 0 && isa >= CpuIsaLevel.Avx512)
        {
            var vScale = Vector512.Create(scale);
            var vZero = Vector512.Create(zero);
            for (; i + 16 <= end; i += 16)
            {
                var q = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Nibbles(Unsafe.ReadUnaligned<ulong>(codes + (i >> 1)))));
                RoundToBf16((q - vZero) * vScale).Store(destination + (i - col));
            }
        }
        if ((i & 1) == 0 && isa >= CpuIsaLevel.Avx2)
        {
            var vScale = Vector256.Create(scale);
            var vZero = Vector256.Create(zero);
            for (; i + 8 <= end; i += 8)
            {
                var q = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(Nibbles(Unsafe.ReadUnaligned<uint>(codes + (i >> 1)))));
                RoundToBf16((q - vZero) * vScale).Store(destination + (i - col));
            }
        }
        for (; i < end; i++)
        {
            int q = (codes[i >> 1] >> ((i & 1) << 2)) & 0xF;
            destination[i - col] = BitConverter.UInt32BitsToSingle((uint)BFloat16.RoundToBits(BitConverter.SingleToUInt32Bits(((float)q - zero) * scale)) << 16);
        }
    }

    /// <summary>
    /// FP8 e4m3 columns [col, end) of one row, all in one scale block: code * scale in float32, rounded once to bf16 (as
    /// <see cref="BFloat16.RoundToBits"/>), widened into destination[0, end - col). With AVX-512 (16 columns) or AVX2 (8)
    /// the code is widened exactly in integer lanes (normal: the exponent rebased from bias 7 to 127; subnormal: m * 2^-9,
    /// exact in float32; the sign or'ed in), so the product and its rounding are the table's bit for bit; a vector that
    /// holds a NaN code (0x7F, 0xFF) goes through the table one by one like the tail.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void DecodeFp8Run(byte* codes, int col, int end, float scale, float* table, float* destination, CpuIsaLevel isa)
    {
        int i = col;
        if (isa >= CpuIsaLevel.Avx512)
        {
            var vScale = Vector512.Create(scale);
            for (; i + 16 <= end; i += 16)
            {
                var b = Avx512F.ConvertToVector512UInt32(Vector128.Load(codes + i));
                var magnitude = b & Vector512.Create(0x7Fu);
                if (Vector512.EqualsAny(magnitude, Vector512.Create(0x7Fu)))
                {
                    Fp8OneByOne(codes, i, i + 16, scale, table, destination + (i - col));
                    continue;
                }
                var normal = (magnitude << 20) + Vector512.Create(120u << 23);
                var subnormal = (Vector512.ConvertToSingle((magnitude & Vector512.Create(7u)).AsInt32()) * Vector512.Create(1f / 512)).AsUInt32();
                var bits = Vector512.ConditionalSelect(Vector512.Equals(magnitude >> 3, Vector512<uint>.Zero), subnormal, normal)
                    | ((b & Vector512.Create(0x80u)) << 24);
                RoundToBf16(bits.AsSingle() * vScale).Store(destination + (i - col));
            }
        }
        if (isa >= CpuIsaLevel.Avx2)
        {
            var vScale = Vector256.Create(scale);
            for (; i + 8 <= end; i += 8)
            {
                var b = Avx2.ConvertToVector256Int32(Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(codes + i)).AsByte()).AsUInt32();
                var magnitude = b & Vector256.Create(0x7Fu);
                if (Vector256.EqualsAny(magnitude, Vector256.Create(0x7Fu)))
                {
                    Fp8OneByOne(codes, i, i + 8, scale, table, destination + (i - col));
                    continue;
                }
                var normal = (magnitude << 20) + Vector256.Create(120u << 23);
                var subnormal = (Vector256.ConvertToSingle((magnitude & Vector256.Create(7u)).AsInt32()) * Vector256.Create(1f / 512)).AsUInt32();
                var bits = Vector256.ConditionalSelect(Vector256.Equals(magnitude >> 3, Vector256<uint>.Zero), subnormal, normal)
                    | ((b & Vector256.Create(0x80u)) << 24);
                RoundToBf16(bits.AsSingle() * vScale).Store(destination + (i - col));
            }
        }
        Fp8OneByOne(codes, i, end, scale, table, destination + (i - col));
    }

    /// <summary>The scalar decode through the code's table value (the definition the vector paths match).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Fp8OneByOne(byte* codes, int from, int end, float scale, float* table, float* destination)
    {
        for (int i = from; i < end; i++)
            destination[i - from] = BitConverter.UInt32BitsToSingle((uint)BFloat16.RoundToBits(BitConverter.SingleToUInt32Bits(table[codes[i]] * scale)) << 16);
    }

    /// <summary>The 2n nibbles of n packed bytes (low nibble first: column order), one per byte lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<byte> Nibbles(ulong packed)
    {
        var w = Vector128.WidenLower(Vector128.CreateScalar(packed).AsByte()); // byte b in a 16-bit lane
        return ((w & Vector128.Create((ushort)0x0F)) | ((w & Vector128.Create((ushort)0xF0)) << 4)).AsByte();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<byte> Nibbles(uint packed) => Nibbles((ulong)packed);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> RoundToBf16(Vector512<float> value)
    {
        var bits = value.AsUInt32();
        var rounded = (bits + Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512<uint>.One)) & Vector512.Create(0xFFFF0000u);
        var quiet = (bits | Vector512.Create(0x0040_0000u)) & Vector512.Create(0xFFFF0000u);
        var nan = Vector512.GreaterThan(bits & Vector512.Create(0x7FFF_FFFFu), Vector512.Create(0x7F80_0000u));
        return Vector512.ConditionalSelect(nan, quiet, rounded).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> RoundToBf16(Vector256<float> value)
    {
        var bits = value.AsUInt32();
        var rounded = (bits + Vector256.Create(0x7FFFu) + ((bits >> 16) & Vector256<uint>.One)) & Vector256.Create(0xFFFF0000u);
        var quiet = (bits | Vector256.Create(0x0040_0000u)) & Vector256.Create(0xFFFF0000u);
        var nan = Vector256.GreaterThan(bits & Vector256.Create(0x7FFF_FFFFu), Vector256.Create(0x7F80_0000u));
        return Vector256.ConditionalSelect(nan, quiet, rounded).AsSingle();
    }

    static float[] BuildFp8Table()
    {
        var table = new float[256];
        for (int b = 0; b < 256; b++)
            table[b] = Float8E4M3.FromBits((byte)b).ToSingle();
        return table;
    }
}
