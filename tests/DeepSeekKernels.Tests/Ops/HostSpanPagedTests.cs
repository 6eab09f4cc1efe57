using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>
/// The host-span forms of KvAppend, PagedAttention and PagedMlaAttention (a host embedding the library keeps its cache in
/// its own arrays): on the reference (staged into a shared CPU runtime), the CPU backend and ILGPU's CPU accelerator, each
/// gives bit for bit what the device-resident op gives on the same backend, over a batch that mixes a prefill, a decode token
/// and a continued chunk on pages out of order; destination elements past the output stay as they were. Refused calls
/// (lengths that do not divide, overlaps, values without valuePages) and bad device-held values (a slot outside the pool, a
/// block-table entry outside it) write nothing.
/// </summary>
[Collection(nameof(DeviceCollection))]
public class HostSpanPagedTests
{
    const int PageSize = 4, Pages = 6, MaxPages = 3, QHeads = 4, KvHeads = 2, HeadDim = 8, VHeadDim = 8;
    const int Latent = 16, Rope = 4, MlaHeads = 3;
    const float Scale = 0.35f;

    // Sequence b: keys after the step, queries in the step, pages in position order.
    static readonly (int Length, int Queries, int[] Pages)[] Sequences = [(5, 5, [4, 1]), (9, 1, [0, 5, 2]), (3, 2, [3])];

    static int Tokens => Sequences.Sum(s => s.Queries);

    static (int[] Table, int[] Lengths, int[] Starts) Metadata()
    {
        var table = Enumerable.Repeat(-1, Sequences.Length * MaxPages).ToArray();
        var starts = new int[Sequences.Length + 1];
        for (int b = 0; b < Sequences.Length; b++)
        {
            Sequences[b].Pages.CopyTo(table, b * MaxPages);
            starts[b + 1] = starts[b] + Sequences[b].Queries;
        }
        return (table, Sequences.Select(s => s.Length).ToArray(), starts);
    }

    /// <summary>The slot of each of the step's query tokens (the last Queries positions of each sequence).</summary>
    static int[] StepSlots() =>
        [.. Sequences.SelectMany(s => Enumerable.Range(s.Length - s.Queries, s.Queries).Select(p => s.Pages[p / PageSize] * PageSize + p % PageSize))];

    static float[] Random(int length, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, length).Select(_ => random.NextSingle() - 0.5f)];
    }


    /// <summary>The runtime the device-resident form runs on for <paramref name="ops"/> (the reference uses the test CPU runtime).</summary>
    static DeviceRuntime RuntimeOf(Ops ops) => ops.Runtime ?? TestDevices.Cpu;

    public static TheoryData<string> Backends => new() { "reference", "cpu", "ilgpu" };

    [Theory]
    [MemberData(nameof(Backends))]
    public void KvAppendAndPagedAttentionGiveWhatTheDeviceFormsGive(string backend) => RunGqa(TestDevices.CpuOps(backend));

    [Theory]
    [MemberData(nameof(Backends))]
    public void Bf16PagesAndMlaGiveWhatTheDeviceFormsGive(string backend) => RunMla(TestDevices.CpuOps(backend));

    /// <summary>f32 keys, values and pools: the span forms against the device forms on <paramref name="ops"/>.</summary>
    internal static void RunGqa(Ops ops)
    {
        var runtime = RuntimeOf(ops);
        int tokens = Tokens, kvRow = KvHeads * HeadDim, vRow = KvHeads * VHeadDim;
        var keys = Random(tokens * kvRow, 1);
        var values = Random(tokens * vRow, 2);
        var q = Random(tokens * QHeads * HeadDim, 3);
        int[] slots = StepSlots();
        var (table, lengths, starts) = Metadata();
        // The pools already hold the earlier keys of every sequence (random), the step's slots are overwritten.
        var keyPool = Random(Pages * PageSize * kvRow, 4);
        var valuePool = Random(Pages * PageSize * vRow, 5);

        // Span forms.
        var spanKeys = (float[])keyPool.Clone();
        var spanValues = (float[])valuePool.Clone();
        ops.KvAppend<float, float>(keys, values, slots, spanKeys, spanValues, PageSize);
        var spanOut = Enumerable.Repeat(7f, tokens * QHeads * VHeadDim + 3).ToArray(); // 3 past the output
        ops.PagedAttention<float, float, float>(q, spanKeys, spanValues, table, lengths, starts, spanOut, QHeads, KvHeads, HeadDim, PageSize, Scale);

        // Device-resident forms on the same backend.
        using var dKeys = runtime.Upload<float>(keys);
        using var dValues = runtime.Upload<float>(values);
        using var dSlots = runtime.Upload<int>(slots);
        using var dKeyPool = runtime.Upload<float>(keyPool);
        using var dValuePool = runtime.Upload<float>(valuePool);
        using var dq = runtime.Upload<float>(q);
        using var dTable = runtime.Upload<int>(table);
        using var dLengths = runtime.Upload<int>(lengths);
        using var dStarts = runtime.Upload<int>(starts);
        using var dOut = runtime.Allocate<float>(tokens * QHeads * VHeadDim);
        var keyPages = DeviceTensor.Of(dKeyPool.View, Pages, PageSize, kvRow);
        var valuePages = DeviceTensor.Of(dValuePool.View, Pages, PageSize, vRow);
        ops.KvAppend(DeviceTensor.Of(dKeys.View, tokens, kvRow), DeviceTensor.Of(dValues.View, tokens, vRow), dSlots.View, keyPages, valuePages);
        ops.PagedAttention(DeviceTensor.Of(dq.View, tokens, QHeads, HeadDim), keyPages, valuePages,
            new PagedBatch(dTable.View, dLengths.View, dStarts.View), DeviceTensor.Of(dOut.View, tokens, QHeads, VHeadDim), KvHeads, Scale);
        runtime.Synchronize();

        Assert.Equal(dKeyPool.View.ToArray(), spanKeys);
        Assert.Equal(dValuePool.View.ToArray(), spanValues);
        Assert.NotEqual(keyPool, spanKeys); // the append wrote something
        Assert.Equal(dOut.View.ToArray(), spanOut[..^3]);
        Assert.All(spanOut[^3..], v => Assert.Equal(7f, v));
        Assert.All(spanOut[..^3], v => Assert.True(float.IsFinite(v)));
    }

    /// <summary>A bf16 latent pool and MLA: the span forms against the device forms on <paramref name="ops"/>.</summary>
    internal static void RunMla(Ops ops)
    {
        var runtime = RuntimeOf(ops);
        int tokens = Tokens, row = Latent + Rope;
        var latent = Random(tokens * row, 11).Select(BFloat16.FromSingle).ToArray();
        var q = Random(tokens * MlaHeads * row, 12);
        int[] slots = StepSlots();
        var (table, lengths, starts) = Metadata();
        var pool = Random(Pages * PageSize * row, 13).Select(BFloat16.FromSingle).ToArray();

        var spanPool = (BFloat16[])pool.Clone();
        ops.KvAppend<BFloat16, BFloat16>(latent, [], slots, spanPool, Span<BFloat16>.Empty, PageSize);
        var spanOut = new float[tokens * MlaHeads * Latent];
        ops.PagedMlaAttention<float, BFloat16, float>(q, spanPool, table, lengths, starts, spanOut, MlaHeads, Latent, Rope, PageSize, Scale);

        using var dLatent = runtime.Upload<BFloat16>(latent);
        using var dSlots = runtime.Upload<int>(slots);
        using var dPool = runtime.Upload<BFloat16>(pool);
        using var dq = runtime.Upload<float>(q);
        using var dTable = runtime.Upload<int>(table);
        using var dLengths = runtime.Upload<int>(lengths);
        using var dStarts = runtime.Upload<int>(starts);
        using var dOut = runtime.Allocate<float>(spanOut.Length);
        var pages = DeviceTensor.Of(dPool.View, Pages, PageSize, row);
        ops.KvAppend(DeviceTensor.Of(dLatent.View, tokens, row), default, dSlots.View, pages, default);
        ops.PagedMlaAttention(DeviceTensor.Of(dq.View, tokens, MlaHeads, row), pages, new PagedBatch(dTable.View, dLengths.View, dStarts.View),
            DeviceTensor.Of(dOut.View, tokens, MlaHeads, Latent), Scale);
        runtime.Synchronize();

        Assert.Equal(dPool.View.ToArray(), spanPool);
        Assert.Equal(dOut.View.ToArray(), spanOut);
        Assert.All(spanOut, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void RefusedCallsWriteNothing()
    {
        var ops = Ops.Reference;
        int tokens = Tokens, kvRow = KvHeads * HeadDim;
        var keys = Random(tokens * kvRow, 1);
        var values = Random(tokens * kvRow, 2);
        int[] slots = StepSlots();
        var keyPool = Random(Pages * PageSize * kvRow, 4);
        var valuePool = Random(Pages * PageSize * kvRow, 5);
        var before = (float[])keyPool.Clone();

        var e = Assert.Throws<ArgumentException>(() => ops.KvAppend<float, float>(keys.AsSpan(1), values, slots, keyPool, valuePool, PageSize));
        Assert.Contains("keys has 127 elements, not 8 token rows", e.Message);
        e = Assert.Throws<ArgumentException>(() => ops.KvAppend<float, float>(keys, [], slots, keyPool, valuePool, PageSize));
        Assert.Contains("values and valuePages come together", e.Message);
        e = Assert.Throws<ArgumentException>(() => ops.KvAppend<float, float>(keys, values, slots, keyPool.AsSpan(0, keyPool.Length - 1), valuePool, PageSize));
        Assert.Contains("keyPages", e.Message);
        e = Assert.Throws<ArgumentException>(() => ops.KvAppend<float, float>(keyPool.AsSpan(0, keys.Length), values, slots, keyPool, valuePool, PageSize));
        Assert.Contains("keyPages overlaps keys", e.Message);
        Assert.Equal(before, keyPool);

        // A slot outside the pool: the device-held check reports it, and the pools come back untouched.
        var bad = (int[])slots.Clone();
        bad[2] = Pages * PageSize;
        var ex = Assert.Throws<DeviceIndexException>(() => ops.KvAppend<float, float>(keys, values, bad, keyPool, valuePool, PageSize));
        Assert.Contains("KvAppend", ex.Message);
        Assert.Equal(before, keyPool);

        // A block-table entry outside the pool: nothing written to the destination.
        var (table, lengths, starts) = Metadata();
        table[1] = Pages + 3;
        var q = Random(tokens * QHeads * HeadDim, 3);
        var output = Enumerable.Repeat(7f, tokens * QHeads * VHeadDim).ToArray();
        Assert.Throws<DeviceIndexException>(() => ops.PagedAttention<float, float, float>(q, keyPool, valuePool, table, lengths, starts, output,
            QHeads, KvHeads, HeadDim, PageSize, Scale));
        Assert.All(output, v => Assert.Equal(7f, v));

        // Metadata lengths that do not fit the batch, and a short destination.
        (table, lengths, starts) = Metadata();
        e = Assert.Throws<ArgumentException>(() => ops.PagedAttention<float, float, float>(q, keyPool, valuePool, table, lengths, starts.AsSpan(1),
            output, QHeads, KvHeads, HeadDim, PageSize, Scale));
        Assert.Contains("queryStarts", e.Message);
        e = Assert.Throws<ArgumentException>(() => ops.PagedAttention<float, float, float>(q, keyPool, valuePool, table, lengths, starts,
            output.AsSpan(1), QHeads, KvHeads, HeadDim, PageSize, Scale));
        Assert.Contains("destination is too short", e.Message);
        e = Assert.Throws<ArgumentException>(() => ops.PagedAttention<float, float, float>(q, keyPool, valuePool, table, lengths, starts,
            q.AsSpan(0, output.Length), QHeads, KvHeads, HeadDim, PageSize, Scale));
        Assert.Contains("destination overlaps q", e.Message);
        Assert.All(output, v => Assert.Equal(7f, v));
    }
}

/// <summary>
/// <see cref="HostSpanPagedTests"/>' comparisons on a GPU: the host-span KvAppend, PagedAttention and PagedMlaAttention stage
/// into the GPU runtime and must give bit for bit what the device-resident ops give there, on the native and ILGPU-CUDA
/// backends. Skips without a CUDA GPU (fails under DSK_REQUIRE_GPU=1).
/// </summary>
[Collection(nameof(DeviceCollection))]
[NeedsCudaGpu]
public sealed class HostSpanPagedGpuTests
{
    public static TheoryData<string> Backends => new() { "native", "ilgpu" };


    [DeviceTheory]
    [MemberData(nameof(Backends))]
    public void GqaOnSpansGivesWhatTheDeviceFormGives(string backend) => HostSpanPagedTests.RunGqa(TestDevices.GpuOps(backend));

    [DeviceTheory]
    [MemberData(nameof(Backends))]
    public void MlaOnSpansGivesWhatTheDeviceFormGives(string backend) => HostSpanPagedTests.RunMla(TestDevices.GpuOps(backend));
}
