using DeepSeekKernels.Generation;

namespace DeepSeekKernels.Tests.Generation;

/// <summary>GenerationOptions.Validate: each option out of range is named, with its value; valid options pass.</summary>
public class GenerationOptionsTests
{
    public static TheoryData<string, GenerationOptions> BadOptions => new()
    {
        { nameof(GenerationOptions.MaxNewTokens), new GenerationOptions { MaxNewTokens = -1 } },
        { nameof(GenerationOptions.StopStrings), new GenerationOptions { StopStrings = ["ok", ""] } },
        { nameof(GenerationOptions.ExtraEosIds), new GenerationOptions { ExtraEosIds = [3, -2] } },
        { nameof(SamplingOptions.Temperature), new GenerationOptions { Sampling = SamplingOptions.Greedy with { Temperature = float.PositiveInfinity } } },
        { nameof(SamplingOptions.TopP), new GenerationOptions { Sampling = SamplingOptions.Greedy with { TopP = 0 } } },
    };

    [Theory, MemberData(nameof(BadOptions))]
    public void TheFirstOptionOutOfRangeIsNamed(string property, GenerationOptions options)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(options.Validate);
        Assert.Equal(property, e.ParamName);
        Assert.NotNull(e.ActualValue);
    }

    [Fact]
    public void ValidOptionsPass()
    {
        new GenerationOptions().Validate();
        new GenerationOptions { MaxNewTokens = 0, StopStrings = ["\n\n"], ExtraEosIds = [0], Sampling = new SamplingOptions { Seed = 1 } }.Validate();
    }
}
