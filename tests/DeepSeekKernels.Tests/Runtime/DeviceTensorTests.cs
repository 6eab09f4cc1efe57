using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using DeepSeekKernels.Tests.Support;

namespace DeepSeekKernels.Tests.Runtime;

/// <summary>The tensor type: views without copies, bounds from shape x strides, and overlap by byte range.</summary>
public sealed class DeviceTensorTests
{
    static DeviceRuntime Cpu => TestDevices.Cpu;

    [Fact]
    public void ARowMajorTensorAddressesEveryElementOnce()
    {
        using var buffer = Cpu.Allocate<float>(2 * 3 * 4);
        var t = buffer.AsTensor(2, 3, 4);
        Assert.Equal([2L, 3, 4], t.Shape);
        Assert.Equal([12L, 4, 1], t.Strides);
        Assert.True(t.IsContiguous);
        Assert.Equal(24, t.ElementCount);
        Assert.Equal(buffer.View.Pointer, t.Pointer);
        Assert.Equal("f32 [2, 3, 4] strides [12, 4, 1] + 0", t.ToString());
    }

    [Fact]
    public void ColumnsSlicesAndSelectsAreViewsOfTheSameElements()
    {
        var values = Enumerable.Range(0, 2 * 3 * 4).Select(i => (float)i).ToArray();
        using var buffer = Cpu.Upload<float>(values);
        var t = buffer.AsTensor(2, 3, 4);

        var columns = t.Columns(1, 2); // [2, 3, 2], element [i, j, k] = t[i, j, 1 + k]
        Assert.Equal([2L, 3, 2], columns.Shape);
        Assert.Equal([12L, 4, 1], columns.Strides);
        Assert.Equal(1, columns.Offset);
        Assert.False(columns.IsContiguous);
        Assert.True(columns.HasUnitInnerStride);

        var row = t.Select(0, 1).Select(0, 2); // t[1, 2, :]
        Assert.Equal(1 * 12 + 2 * 4, row.Offset);
        Assert.True(row.IsContiguous);
        Assert.Equal(values.AsSpan(20, 4).ToArray(), row.AsView<float>().ToArray());

        var rows = t.Rows(1, 1);
        Assert.Equal(12, rows.Offset);
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Slice(1, 2, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Select(2, 4));
        Assert.Throws<InvalidOperationException>(() => columns.AsView<float>());
        Assert.Throws<InvalidOperationException>(() => t.AsView<int>());
    }

    [Fact]
    public void ReshapeSplitsAndMergesWhereStridesAllowAndRefusesOtherwise()
    {
        using var buffer = Cpu.Allocate<float>(4 * 6);
        var t = buffer.AsTensor(4, 6);
        Assert.Equal([6L, 3, 1], t.Reshape(4, 2, 3).Strides);
        Assert.Equal([1L], t.Reshape(24).Strides);

        // columns 0..3 of each row: the rows can split into heads, but rows and columns cannot merge
        var block = t.Columns(0, 4);
        var heads = block.Reshape(4, 2, 2);
        Assert.Equal([6L, 2, 1], heads.Strides);
        Assert.Throws<InvalidOperationException>(() => block.Reshape(16));
        Assert.Throws<ArgumentException>(() => t.Reshape(5, 5));
    }

    [Fact]
    public void ATensorCannotReachPastItsAllocation()
    {
        using var buffer = Cpu.Allocate<float>(10);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => DeviceTensor.Strided(buffer.View.Slice(2, 8), [3, 4], [4, 1]));
        Assert.Contains("reaches element 13; the allocation has 10", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => DeviceTensor.Strided(buffer.View, [2], [-1]));
        Assert.Throws<ArgumentException>(() => buffer.AsTensor(3, 4));
        var broadcast = DeviceTensor.Strided(buffer.View, [5, 10], [0, 1]); // every row the same 10 elements
        Assert.Equal(9, broadcast.LastElement);
    }

    [Fact]
    public void OverlapIsDecidedByByteRangeNotByReference()
    {
        using var a = Cpu.Allocate<float>(64);
        using var other = Cpu.Allocate<float>(64);
        var whole = a.AsTensor(8, 8);
        Assert.Equal(Overlap.Exact, TensorChecks.Of(whole, a.AsTensor(8, 8)));
        Assert.Equal(Overlap.Partial, TensorChecks.Of(whole, a.View.Slice(60, 4))); // same allocation, other view object
        Assert.Equal(Overlap.None, TensorChecks.Of(whole, other.AsTensor(8, 8)));
        Assert.Equal(Overlap.None, TensorChecks.Of(a.View.Slice(0, 32), a.View.Slice(32, 32)));
        Assert.Equal(Overlap.Partial, TensorChecks.Of(whole, whole.Reshape(64))); // same elements, another layout

        // column blocks of the same rows: q | k | v of one fused projection
        var q = whole.Columns(0, 4);
        var k = whole.Columns(4, 2);
        var v = whole.Columns(6, 2);
        Assert.Equal(Overlap.None, TensorChecks.Of(q, k));
        Assert.Equal(Overlap.None, TensorChecks.Of(k, v));
        Assert.Equal(Overlap.None, TensorChecks.Of(v, q));
        Assert.Equal(Overlap.Partial, TensorChecks.Of(whole.Columns(0, 5), k));
        Assert.Equal(Overlap.Partial, TensorChecks.Of(q, whole.Rows(2, 1))); // a whole row meets every column block

        // bf16 views of another allocation type are byte ranges too
        using var b = Cpu.Allocate<BFloat16>(16);
        Assert.Equal(Overlap.None, TensorChecks.Of(b.AsTensor(4, 4).Columns(0, 2), b.AsTensor(4, 4).Columns(2, 2)));
    }

    [Fact]
    public void ChecksNameTheOpAndTheParameter()
    {
        using var a = Cpu.Allocate<float>(12);
        using var ids = Cpu.Allocate<int>(12);
        var t = a.AsTensor(3, 4);
        var e = Assert.Throws<NotSupportedException>(() => TensorChecks.Check("Op", "x", ids.AsTensor(3, 4), null, 2, ElementType.F32, ElementType.BF16));
        Assert.Equal("Op: x holds i32; Op takes f32 or bf16.", e.Message);
        var rank = Assert.Throws<ArgumentException>(() => TensorChecks.Check("Op", "x", t, null, 3, ElementType.F32));
        Assert.Equal("x", rank.ParamName);
        Assert.Contains("has 2 dimensions [3, 4]; Op takes 3", rank.Message);
        var strided = DeviceTensor.Strided(a.View, [3, 2], [4, 2]);
        Assert.Contains("needs it dense", Assert.Throws<ArgumentException>(() => TensorChecks.Check("Op", "x", strided, null, 2)).Message);
        Assert.Contains("x is a default DeviceTensor", Assert.Throws<ArgumentException>(() => TensorChecks.Check("Op", "x", default, null, 2)).Message);
        Assert.Contains("overlaps", Assert.Throws<ArgumentException>(() => TensorChecks.Disjoint("Op", "y", t, "x", t.Columns(1, 1))).Message);
        TensorChecks.ExactOrDisjoint("Op", "y", t, "x", a.AsTensor(3, 4));
    }

    [Fact]
    public void AnArenaHandsOutAlignedWindowsThatOpsUseAndOverlapChecksTellApart()
    {
        using var arena = Cpu.CreateArena(DeviceArena.SizeOf([10 * 4, 3 * 2, 10 * 4]));
        Assert.Equal(3 * DeviceArena.Alignment, arena.Capacity);
        var a = arena.Allocate<float>(10);
        var b = arena.Allocate<BFloat16>(3);
        var c = arena.Allocate<float>(10);
        Assert.Equal(arena.Capacity, arena.Used);
        Assert.True(a.IsArenaWindow);
        Assert.Equal(DeviceArena.Alignment, (long)(c.View.Pointer - a.View.Pointer) / 2);
        Assert.Equal(DeviceArena.Alignment, (long)(b.View.Pointer - a.View.Pointer)); // relative to the arena's start
        Assert.Throws<InvalidOperationException>(() => arena.Allocate<float>(1));
        Assert.Throws<InvalidOperationException>(() => a.Memory);

        // windows of one allocation are apart by byte range; a window against itself is exact
        Assert.Equal(Overlap.None, Overlaps.Of(a.View, c.View));
        Assert.Equal(Overlap.None, TensorChecks.Of(a.AsTensor(10), c.AsTensor(10)));
        Assert.Equal(Overlap.Partial, Overlaps.Of(a.View, a.View.Slice(1, 3)));

        // and the ops read and write them like any buffer
        a.CopyFromHost(Enumerable.Range(0, 10).Select(i => (float)i).ToArray());
        Ops.Create(Cpu, Backend.Reference).Add(a.View, a.View, c.View);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => 2f * i).ToArray(), c.ToArray());
        var e = Assert.Throws<ArgumentException>(() => Ops.Create(Cpu, Backend.Reference).Add(a.View, a.View, a.View.Slice(1, 9)));
        Assert.Contains("destination", e.ParamName);
    }
}
