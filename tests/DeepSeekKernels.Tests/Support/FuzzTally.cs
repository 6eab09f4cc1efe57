namespace DeepSeekKernels.Tests.Support;

/// <summary>
/// The outcome of the cases of a fuzz test: each either works, or is refused with the exception the contract
/// names (which the test's check may inspect further), or throws something else: a stray, listed with the
/// damage that caused it. <see cref="AssertClean"/> fails on any stray and when one of the two outcomes never
/// occurs (the damage then does not reach what the test means to test).
/// </summary>
public sealed class FuzzTally(string subject)
{
    readonly List<string> _strays = [];

    public int Worked { get; private set; }
    public int Refused { get; private set; }

    /// <summary>Runs one case; <paramref name="refusal"/> says whether an exception is the contract's refusal (it may assert on it).</summary>
    public void Run(int index, string damage, Action attempt, Func<Exception, bool> refusal)
    {
        try
        {
            attempt();
            Worked++;
        }
        catch (Exception e) when (refusal(e))
        {
            Refused++;
        }
        catch (Exception e) when (e is not Xunit.Sdk.IAssertionException)
        {
            _strays.Add($"case {index} ({damage}): {e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}");
        }
    }

    /// <summary>No strays, and both outcomes occurred (or only refusals, when <paramref name="someMustWork"/> is false).</summary>
    public void AssertClean(bool someMustWork = true)
    {
        Assert.True(_strays.Count == 0, $"{subject}: {_strays.Count} stray exceptions:\n" + string.Join("\n", _strays));
        Assert.True(Refused > 0 && (Worked > 0 || !someMustWork), $"{subject}: {Worked} worked, {Refused} refused");
    }
}
