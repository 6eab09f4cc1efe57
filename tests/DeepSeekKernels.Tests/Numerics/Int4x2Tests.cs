using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Tests.Numerics;

public class Int4x2Tests
{
    [Fact]
    public void PacksLowNibbleFirstAndSignExtends()
    {
        for (int low = -8; low <= 7; low++)
            for (int high = -8; high <= 7; high++)
            {
                var p = Int4x2.Pack(low, high);
                Assert.Equal(low, p.Low);
                Assert.Equal(high, p.High);
                Assert.Equal(low & 0xF, p.Bits & 0xF);
            }
        Assert.Equal(0x1F, Int4x2.Pack(-1, 1).Bits);
    }

    [Fact]
    public void OutOfRangeValuesAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Int4x2.Pack(8, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Int4x2.Pack(0, -9));
    }
}
