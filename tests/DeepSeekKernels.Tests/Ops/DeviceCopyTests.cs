using DeepSeekKernels.Numerics;
using DeepSeekKernels.Tests.Support;
using static DeepSeekKernels.Tests.OpTests.OpTestSupport;

namespace DeepSeekKernels.Tests.OpTests;

/// <summary>The runtime pieces the ops added: int32 buffers, device-to-device copies and clearing.</summary>
[Collection(nameof(DeviceCollection))]
public class DeviceCopyTests
{
    [Fact]
    public void Int32BuffersRoundTrip()
    {
        int[] values = [0, -1, int.MaxValue, int.MinValue, 129_279];
        using var buffer = Upload(values);
        Assert.Equal(ElementType.I32, buffer.ElementType);
        Assert.Equal("i32", ElementType.I32.Name());
        Assert.Equal(5, (int)ElementType.I32); // dsk_dtype's value at the C boundary
        Assert.Equal(values, buffer.ToArray());
    }

    [Fact]
    public void CopyToCopiesOnTheDeviceAndChecksItsArguments()
    {
        var values = RandomValues(40, 1);
        using var source = Upload(values);
        using var destination = Poisoned(50);
        source.Slice(10, 20).CopyTo(destination.Slice(5, 20));
        var copied = destination.ToArray();
        Exact(values.AsSpan(10, 20), copied.AsSpan(5, 20), "copied");
        AllNaN(copied.AsSpan(0, 5), "before");
        AllNaN(copied.AsSpan(25), "after");

        Assert.Throws<ArgumentException>(() => source.Slice(0, 10).CopyTo(destination.Slice(0, 9)));
        Assert.Throws<ArgumentException>(() => source.Slice(0, 10).CopyTo(source.Slice(5, 10)));
        Assert.Throws<ArgumentException>(() => source.Slice(0, 10).CopyTo(default));
        source.CopyTo(destination.Slice(10, 40));
        Exact(values, destination.ToArray().AsSpan(10, 40), "whole buffer");
    }

    [Fact]
    public void ClearZeroesOnlyTheView()
    {
        using var buffer = Upload(RandomValues(30, 2));
        buffer.Slice(10, 10).Clear();
        var values = buffer.ToArray();
        Assert.All(values[10..20], v => Assert.Equal(0f, v));
        Assert.DoesNotContain(0f, values[..10]);
        Assert.DoesNotContain(0f, values[20..]);
        using var ids = Upload(new[] { 5, 6, 7 });
        ids.Clear();
        Assert.Equal([0, 0, 0], ids.ToArray());
    }
}
