using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.OpTests;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Cpu;

/// <summary>
/// The CPU backend's small ops on bf16 activations (embedding, RoPE, column copies, MoE routing, permutation and combine,
/// the elementwise ops, paged attention's q and output) run the reference's float32 host code on per-thread float32 images
/// (<c>CpuF32Images</c>) instead of host images made per call: their results are the reference backend's bit for bit (in
/// place and not, strided heads, guards after the outputs), and a warm call allocates nothing (a bf16 decode step allocated
/// 9-55 KB a token in those images until 2026-12-02).
/// </summary>
public sealed class CpuBf16ImageOpsTests
{
    static DeviceRuntime Runtime => TestDevices.Cpu;
    static readonly Ops Cpu = Ops.CreateCpu(TestDevices.Cpu, 1);
    static readonly Ops Reference = Ops.Create(TestDevices.Cpu, Backend.Reference);

    static BFloat16[] Values(int count, int seed, float range = 2f)
    {
        var random = new Random(seed);
        var values = new BFloat16[count];
        for (int i = 0; i < count; i++)
            values[i] = (BFloat16)((random.NextSingle() * 2 - 1) * range);
        return values;
    }

    static BFloat16[] Nan(int count) => Enumerable.Repeat(BFloat16.NaN, count).ToArray();

    static ushort[] Bits(BFloat16[] values) => [.. values.Select(v => v.Bits)];

    /// <summary>
    /// <paramref name="call"/> on the CPU backend and on the reference, each over its own copies of <paramref name="buffers"/>:
    /// every buffer's bits must match afterwards. Then 8 more calls on the CPU backend, counted one by one: at least 6 must
    /// allocate nothing (one-off runtime work on the thread, such as a JIT tier-up, aside; an image made per call would show in all).
    /// </summary>
    static void SameAsReference(string what, BFloat16[][] buffers, Action<Ops, DeviceBuffer<BFloat16>[]> call)
    {
        var results = new ushort[2][][];
        foreach (var (ops, index) in new[] { (Cpu, 0), (Reference, 1) })
        {
            var device = buffers.Select(b => Runtime.Upload<BFloat16>(b)).ToArray();
            try
            {
                call(ops, device);
                results[index] = [.. device.Select(d => Bits(d.ToArray()))];
            }
            finally
            {
                foreach (var d in device)
                    d.Dispose();
            }
        }
        for (int b = 0; b < buffers.Length; b++)
        {
            int differ = Enumerable.Range(0, results[0][b].Length).FirstOrDefault(i => results[0][b][i] != results[1][b][i], -1);
            Assert.True(differ < 0, $"{what}: buffer {b}, element {differ}: the CPU backend wrote 0x{(differ < 0 ? 0 : results[0][b][differ]):x4}, the reference 0x{(differ < 0 ? 0 : results[1][b][differ]):x4}");
        }

        var warm = buffers.Select(b => Runtime.Upload<BFloat16>(b)).ToArray();
        try
        {
            call(Cpu, warm);
            var bytes = new long[8];
            for (int i = 0; i < bytes.Length; i++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                call(Cpu, warm);
                bytes[i] = GC.GetAllocatedBytesForCurrentThread() - before;
            }
            Assert.True(bytes.Count(b => b == 0) >= 6, $"{what}: bytes allocated by each of 8 warm calls: {string.Join(", ", bytes)}");
        }
        finally
        {
            foreach (var d in warm)
                d.Dispose();
        }
    }

    [Theory]
    [InlineData(1, 4, 64, 64, 0, RopeLayout.HalfSplit)]     // a decode token, Llama's heads
    [InlineData(5, 3, 192, 64, 128, RopeLayout.Interleaved)] // DeepSeek's q: the rope part after 128 nope elements
    [InlineData(3, 1, 576, 64, 512, RopeLayout.Interleaved)] // MLA's latent row: k_pe after the 512 latent elements
    public void RopeIsTheReferences(int tokens, int heads, int headStride, int rotaryDim, int ropeOffset, RopeLayout layout)
    {
        var positions = Enumerable.Range(0, tokens).Select(t => 3 * t + 1).ToArray();
        using var dp = Runtime.Upload<int>(positions);
        using var table = RopeTable.Create(Runtime, RopeScaling.Plain(10000), rotaryDim, 64);
        SameAsReference($"Rope {tokens}x{heads}x{headStride}", [Values(tokens * heads * headStride, 1)],
            (ops, b) => ops.Rope(b[0].View, dp.View, table, heads, headStride, ropeOffset, layout));
    }

    [Theory]
    [InlineData(1, 576, 512, 64, 0, 64)]
    [InlineData(5, 33, 3, 40, 17, 20)]
    public void CopyColumnsIsTheReferences(int rows, int sourceColumns, int sourceOffset, int destinationColumns, int destinationOffset, int width) =>
        SameAsReference("CopyColumns", [Values(rows * sourceColumns, 2), Nan(rows * destinationColumns + 5)],
            (ops, b) => ops.CopyColumns(b[0].View, sourceColumns, sourceOffset, b[1].View, destinationColumns, destinationOffset, width, rows));

    [Fact]
    public void SiluAndMulIsTheReferences() =>
        SameAsReference("SiluAndMul", [Values(3 * 2 * 37, 3, 6f), Nan(3 * 37)], (ops, b) => ops.SiluAndMul(b[0].View, b[1].View, 37));

    [Theory]
    [InlineData(false), InlineData(true)]
    public void SoftmaxIsTheReferences(bool inPlace) =>
        SameAsReference($"Softmax, in place {inPlace}", [Values(4 * 33, 4, 20f), Nan(4 * 33)],
            (ops, b) => ops.Softmax(b[0].View, inPlace ? b[0].View : b[1].View, 33));

    /// <summary>z apart from x and y, z = x, z = y, and x = y = z.</summary>
    [Theory]
    [InlineData("apart"), InlineData("z=x"), InlineData("z=y"), InlineData("all")]
    public void AddIsTheReferences(string aliasing) =>
        SameAsReference($"Add, {aliasing}", [Values(129, 5), Values(129, 6), Nan(129)], (ops, b) =>
        {
            var x = b[0].View;
            var y = aliasing == "all" ? x : b[1].View;
            var z = aliasing switch { "z=x" or "all" => x, "z=y" => y, _ => b[2].View };
            ops.Add(x, y, z);
        });

    [Theory]
    [InlineData(false), InlineData(true)]
    public void ScaleIsTheReferences(bool inPlace) =>
        SameAsReference($"Scale, in place {inPlace}", [Values(77, 7), Nan(77)],
            (ops, b) => ops.Scale(b[0].View, 0.37f, inPlace ? b[0].View : b[1].View));

    [Theory]
    [InlineData("bf16"), InlineData("f32"), InlineData("int4")]
    public void EmbeddingIntoBf16IsTheReferences(string form)
    {
        const int vocab = 40, hidden = 64;
        using var table = new OpTestSupport.TestWeight(form, 1, vocab, hidden, seed: 8);
        using var ids = Runtime.Upload<int>([3, 39, 0, 3, 17]);
        SameAsReference($"Embedding of a {form} table", [Nan(5 * hidden + 3)],
            (ops, b) => ops.Embedding(ids.View, table.Matrix, b[0].View.Slice(0, 5 * hidden)));
    }

    [Fact]
    public void MoeRoutePermuteAndCombineAreTheReferences()
    {
        const int tokens = 6, hidden = 48, experts = 8, topK = 2;
        var routing = new MoeRouting { Experts = experts, TopK = topK, NormalizeTopK = true };
        var logits = Values(tokens * experts, 9, 4f);
        var ids = new int[tokens * topK];
        var weights = new float[tokens * topK];
        var referenceIds = new int[ids.Length];
        var referenceWeights = new float[weights.Length];
        Cpu.MoeRoute<BFloat16>(logits, default, ids, weights, routing);
        Reference.MoeRoute<BFloat16>(logits, default, referenceIds, referenceWeights, routing);
        Assert.Equal(referenceIds, ids);
        Assert.Equal(referenceWeights, weights);

        using var dIds = Runtime.Upload<int>(ids);
        using var dWeights = Runtime.Upload<float>(weights);
        using var offsets = Runtime.Allocate<int>(experts + 1);
        using var slotRows = Runtime.Allocate<int>(tokens * topK);
        SameAsReference("MoePermute", [Values(tokens * hidden, 10), Nan(tokens * topK * hidden + 3)],
            (ops, b) => ops.MoePermute(b[0].View, dIds.View, b[1].View.Slice(0, tokens * topK * hidden), offsets.View, slotRows.View, experts, topK));
        foreach (bool accumulate in new[] { false, true })
            SameAsReference($"MoeCombine, accumulate {accumulate}", [Values(tokens * topK * hidden, 11), Values(tokens * hidden, 12)],
                (ops, b) => ops.MoeCombine(b[0].View, slotRows.View, dWeights.View, b[1].View, topK, accumulate));
    }

    /// <summary>GQA over bf16 pages and MLA over bf16 latent pages, with bf16 q and output: a decode row and a 3-token chunk.</summary>
    [Theory]
    [InlineData(false), InlineData(true)]
    public void PagedAttentionWithBf16QueriesAndOutputIsTheReferences(bool mla)
    {
        const int pageSize = 16, pages = 7;
        int qHeads = 8, kvHeads = mla ? 1 : 2, headDim = mla ? 96 : 64, vHeadDim = mla ? 64 : 64;
        int[] table = [4, 1, 5, -1, 0, 2, 3, 6], lengths = [40, 50], starts = [0, 1, 4];
        int tokens = starts[^1], width = kvHeads * headDim;
        using var keys = Runtime.Upload<BFloat16>(Values(pages * pageSize * width, 13));
        using var values = Runtime.Upload<BFloat16>(Values(pages * pageSize * width, 14));
        using var dTable = Runtime.Upload<int>(table);
        using var dLengths = Runtime.Upload<int>(lengths);
        using var dStarts = Runtime.Upload<int>(starts);
        var batch = new PagedBatch(dTable.View, dLengths.View, dStarts.View);
        int outputs = tokens * qHeads * vHeadDim;
        SameAsReference(mla ? "PagedMlaAttention" : "PagedAttention", [Values(tokens * qHeads * headDim, 15), Nan(outputs + 7)], (ops, b) =>
        {
            var q = b[0].View.AsTensor(tokens, qHeads, headDim);
            var y = b[1].View.Slice(0, outputs).AsTensor(tokens, qHeads, vHeadDim);
            if (mla)
                ops.PagedMlaAttention(q, keys.View.AsTensor(pages, pageSize, width), batch, y, 0.125f);
            else
                ops.PagedAttention(q, keys.View.AsTensor(pages, pageSize, width), values.View.AsTensor(pages, pageSize, width), batch, y, kvHeads, 0.125f);
        });
    }
}
