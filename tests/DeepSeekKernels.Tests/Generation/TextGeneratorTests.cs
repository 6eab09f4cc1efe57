using DeepSeekKernels.Generation;
using DeepSeekKernels.Tests.Checkpoints;
using DeepSeekKernels.Tests.Models;
using DeepSeekKernels.Tests.Support;
using DeepSeekKernels.Tokenization;

namespace DeepSeekKernels.Tests.Generation;

/// <summary>Stop strings, EOS, streaming and the context limit, on the embedded model (greedy, so the text is known).</summary>
[Collection(nameof(DeviceCollection))]
public class TextGeneratorTests
{
    // Greedy continuation of "The list type": " is not a list of\nthe list.  The list is a tuple containing ..."
    const string Prompt = "The list type";

    static (TextGenerator Generator, int[] Prompt, IDisposable Model) Create(int context = 128)
    {
        var tokenizer = HfTokenizer.FromFolder(CheckpointFixtures.PydocTiny);
        var model = ModelTestSupport.Load(CheckpointFixtures.PydocTiny);
        return (new TextGenerator(model, tokenizer, context), tokenizer.Encode(Prompt), model);
    }

    [Fact]
    public void AStopStringEndsTheTextBeforeIt()
    {
        var (generator, prompt, model) = Create();
        using (model)
        using (generator)
        {
            var pieces = new List<string>();
            var result = generator.Generate(prompt, new GenerationOptions { MaxNewTokens = 40, StopStrings = ["tuple"] },
                t => pieces.Add(t.Text), TestContext.Current.CancellationToken);
            Assert.Equal(FinishReason.StopString, result.FinishReason);
            Assert.Equal(" is not a list of\nthe list.  The list is a ", result.Text);
            Assert.Equal(result.Text, string.Concat(pieces)); // nothing of the stop string was streamed
        }
    }

    [Fact]
    public void AStopStringSplitAcrossTokensIsFound()
    {
        var (generator, prompt, model) = Create();
        using (model)
        using (generator)
        {
            // "list.  The" spans several tokens
            var result = generator.Generate(prompt, new GenerationOptions { MaxNewTokens = 40, StopStrings = ["list.  The"] },
                cancellationToken: TestContext.Current.CancellationToken);
            Assert.Equal(FinishReason.StopString, result.FinishReason);
            Assert.Equal(" is not a list of\nthe ", result.Text);
        }
    }

    [Fact]
    public void EndOfSequenceStopsWithoutTheToken()
    {
        var (generator, prompt, model) = Create();
        using (model)
        using (generator)
        {
            // Declare the model's first greedy token an end-of-sequence id: generation stops at once.
            var first = generator.Generate(prompt, new GenerationOptions { MaxNewTokens = 1 }, cancellationToken: TestContext.Current.CancellationToken);
            var result = generator.Generate(prompt, new GenerationOptions { MaxNewTokens = 10, ExtraEosIds = [first.GeneratedIds[0]] },
                cancellationToken: TestContext.Current.CancellationToken);
            Assert.Equal(FinishReason.EndOfSequence, result.FinishReason);
            Assert.Empty(result.GeneratedIds);
        }
    }

    [Fact]
    public void AFullContextEndsGeneration()
    {
        var (generator, prompt, model) = Create(context: 8);
        using (model)
        using (generator)
        {
            var result = generator.Generate(prompt, new GenerationOptions { MaxNewTokens = 50 }, cancellationToken: TestContext.Current.CancellationToken);
            Assert.Equal(FinishReason.ContextFull, result.FinishReason);
            Assert.Equal(8 - prompt.Length + 1, result.GeneratedIds.Count); // the last token needs no cache slot
        }
    }
}
