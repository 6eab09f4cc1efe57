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

    [Fact]
    public void PacksUnsignedLowNibbleFirstAndReadsTheSameBitsBothWays()
    {
        for (int low = 0; low <= 15; low++)
            for (int high = 0; high <= 15; high++)
            {
                var p = Int4x2.PackUnsigned(low, high);
                Assert.Equal((low, high), (p.LowUnsigned, p.HighUnsigned));
                Assert.Equal(low | high << 4, p.Bits);
                // the signed reading of the same byte is the two's complement of each nibble
                Assert.Equal((low >= 8 ? low - 16 : low, high >= 8 ? high - 16 : high), (p.Low, p.High));
            }
        Assert.Equal(0x1F, Int4x2.PackUnsigned(15, 1).Bits);
        Assert.Equal(Int4x2.Pack(-1, 1), Int4x2.PackUnsigned(15, 1));
    }

    [Fact]
    public void OutOfRangeUnsignedValuesAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Int4x2.PackUnsigned(16, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Int4x2.PackUnsigned(0, -1));
    }
}
