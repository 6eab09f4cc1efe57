using DeepSeekKernels.Caching;

namespace DeepSeekKernels.Tests.Caching;

/// <summary>
/// KvBatchLayout: the attention metadata of a mixed step (a prefill chunk, a decode token, a later chunk) element by
/// element, into its own buffers and into poisoned caller spans; padding past the step; refusals that name the entry.
/// </summary>
public class KvBatchLayoutTests
{
    const int Poison = int.MinValue;
    const int U = KvBatchLayout.Unused;

    /// <summary>
    /// Page size 16. C has 16 tokens cached in page 0; B has 37 cached in pages 1, 2, 3; A is new and gets page 4;
    /// C's chunk then spills into page 5. The step: A's prefill of 5 at cached 0, B's decode token at cached 37,
    /// C's chunk of 3 at cached 16.
    /// </summary>
    static (KvBlockManager Cache, KvBatchEntry[] Step) MixedStep()
    {
        var cache = new KvBlockManager(8, 16);
        int c = cache.AddSequence(), b = cache.AddSequence(), a = cache.AddSequence();
        cache.Reserve(c, 16);
        cache.Reserve(b, 38);
        cache.Reserve(a, 5);
        cache.Reserve(c, 19);
        Assert.Equal([0, 5], cache.PagesOf(c));
        Assert.Equal([1, 2, 3], cache.PagesOf(b));
        Assert.Equal([4], cache.PagesOf(a));
        return (cache, [new(a, 0, 5), new(b, 37, 1), new(c, 16, 3)]);
    }

    // The expected arrays for MixedStep with maxBatch 4, tableWidth 4, maxTokens 12 (one padded row, 3 padded tokens).
    static readonly int[] ExpectedBlockTable =
    [
        4, U, U, U, // A: 5 keys, 1 page
        1, 2, 3, U, // B: 38 keys, 3 pages
        0, 5, U, U, // C: 19 keys, 2 pages
        U, U, U, U, // padding row
    ];
    static readonly int[] ExpectedSequenceLengths = [5, 38, 19, 0];
    static readonly int[] ExpectedQueryStarts = [0, 5, 6, 9, 9];
    static readonly int[] ExpectedPositions = [0, 1, 2, 3, 4, 37, 16, 17, 18, 0, 0, 0];
    static readonly int[] ExpectedSlotMapping =
    [
        4 * 16 + 0, 4 * 16 + 1, 4 * 16 + 2, 4 * 16 + 3, 4 * 16 + 4, // A in page 4
        3 * 16 + 5, // B's position 37: its third page (3), offset 5
        5 * 16 + 0, 5 * 16 + 1, 5 * 16 + 2, // C's positions 16..18: its second page (5)
        U, U, U,
    ];
    static readonly int[] ExpectedLastTokenIndex = [4, 5, 8, U];

    [Fact]
    public void AMixedStepIsLaidOutElementByElement()
    {
        var (cache, step) = MixedStep();
        var layout = new KvBatchLayout(maxBatch: 4, tableWidth: 4, maxTokens: 12);
        Assert.Equal(default, layout.Counts);

        var counts = layout.Build(cache, step);

        Assert.Equal(new KvBatchCounts(Batch: 3, Tokens: 9, MaxQueryLength: 5, MaxSequenceLength: 38), counts);
        Assert.Equal(counts, layout.Counts);
        Assert.Equal(ExpectedBlockTable, layout.BlockTable.ToArray());
        Assert.Equal(ExpectedSequenceLengths, layout.SequenceLengths.ToArray());
        Assert.Equal(ExpectedQueryStarts, layout.QueryStarts.ToArray());
        Assert.Equal(ExpectedPositions, layout.Positions.ToArray());
        Assert.Equal(ExpectedSlotMapping, layout.SlotMapping.ToArray());
        Assert.Equal(ExpectedLastTokenIndex, layout.LastTokenIndex.ToArray());

        // The slots are the manager's, token by token.
        for (int b = 0; b < counts.Batch; b++)
            for (int t = layout.QueryStarts[b]; t < layout.QueryStarts[b + 1]; t++)
                Assert.Equal(cache.Slot(step[b].Sequence, layout.Positions[t]), layout.SlotMapping[t]);
    }

    [Fact]
    public void FillWritesEveryElementOfPoisonedSpans()
    {
        var (cache, step) = MixedStep();
        int[] blockTable = Poisoned(16), lengths = Poisoned(4), starts = Poisoned(5), positions = Poisoned(12), slots = Poisoned(12), last = Poisoned(4);

        var counts = KvBatchLayout.Fill(cache, step, tableWidth: 4, blockTable, lengths, starts, positions, slots, last);

        Assert.Equal(new KvBatchCounts(3, 9, 5, 38), counts);
        Assert.Equal(ExpectedBlockTable, blockTable);
        Assert.Equal(ExpectedSequenceLengths, lengths);
        Assert.Equal(ExpectedQueryStarts, starts);
        Assert.Equal(ExpectedPositions, positions);
        Assert.Equal(ExpectedSlotMapping, slots);
        Assert.Equal(ExpectedLastTokenIndex, last);
    }

    [Fact]
    public void FillIntoSpansExactlyTheStepsSizeLeavesNoPadding()
    {
        var (cache, step) = MixedStep();
        int[] blockTable = Poisoned(3 * 3), lengths = Poisoned(3), starts = Poisoned(4), positions = Poisoned(9), slots = Poisoned(9), last = Poisoned(3);
        KvBatchLayout.Fill(cache, step, tableWidth: 3, blockTable, lengths, starts, positions, slots, last);
        Assert.Equal([4, U, U, 1, 2, 3, 0, 5, U], blockTable);
        Assert.Equal(ExpectedSequenceLengths[..3], lengths);
        Assert.Equal(ExpectedQueryStarts[..4], starts);
        Assert.Equal(ExpectedPositions[..9], positions);
        Assert.Equal(ExpectedSlotMapping[..9], slots);
        Assert.Equal(ExpectedLastTokenIndex[..3], last);
    }

    [Fact]
    public void ASmallerNextStepPadsWhatTheLargerOneWrote()
    {
        var (cache, step) = MixedStep();
        var layout = new KvBatchLayout(4, 4, 12);
        layout.Build(cache, step);
        // The next step: B decodes its next token alone (after reserving it).
        cache.Reserve(step[1].Sequence, 39);
        var counts = layout.Build(cache, [new KvBatchEntry(step[1].Sequence, 38, 1)]);

        Assert.Equal(new KvBatchCounts(1, 1, 1, 39), counts);
        Assert.Equal([1, 2, 3, U, U, U, U, U, U, U, U, U, U, U, U, U], layout.BlockTable.ToArray());
        Assert.Equal([39, 0, 0, 0], layout.SequenceLengths.ToArray());
        Assert.Equal([0, 1, 1, 1, 1], layout.QueryStarts.ToArray());
        Assert.Equal([38, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], layout.Positions.ToArray());
        Assert.Equal([3 * 16 + 6, U, U, U, U, U, U, U, U, U, U, U], layout.SlotMapping.ToArray());
        Assert.Equal([0, U, U, U], layout.LastTokenIndex.ToArray());
    }

    [Fact]
    public void ANewLayoutIsAllPadding()
    {
        var layout = new KvBatchLayout(2, 3, 4);
        Assert.Equal((2, 3, 4), (layout.MaxBatch, layout.TableWidth, layout.MaxTokens));
        Assert.All(layout.BlockTable.ToArray(), page => Assert.Equal(U, page));
        Assert.Equal(6, layout.BlockTable.Length);
        Assert.Equal([0, 0], layout.SequenceLengths.ToArray());
        Assert.Equal([0, 0, 0], layout.QueryStarts.ToArray());
        Assert.Equal([0, 0, 0, 0], layout.Positions.ToArray());
        Assert.Equal([U, U, U, U], layout.SlotMapping.ToArray());
        Assert.Equal([U, U], layout.LastTokenIndex.ToArray());
    }

    [Fact]
    public void OnlyThePagesTheStepReachesEnterTheTable()
    {
        // Reserved ahead (5 pages), used 2: the row holds 2 pages, so the width need only cover what is used.
        var cache = new KvBlockManager(8, 16);
        int s = cache.AddSequence();
        cache.Reserve(s, 80);
        var layout = new KvBatchLayout(1, 2, 4);
        layout.Build(cache, [new KvBatchEntry(s, 30, 2)]);
        Assert.Equal([0, 1], layout.BlockTable.ToArray());
        Assert.Equal([30, 31, 0, 0], layout.Positions.ToArray());
    }

    [Theory]
    [InlineData(0, 4, 8, "maxBatch", "maxBatch 0: a step has at least 1 sequence.")]
    [InlineData(4, 0, 8, "tableWidth", "tableWidth 0: a block table row holds at least 1 page.")]
    [InlineData(4, 4, -1, "maxTokens", "maxTokens -1: a step has at least 1 new token.")]
    [InlineData(65_536, 65_536, 8, "tableWidth", "4,294,967,296 block table entries, more than an array holds")]
    public void BadLayoutSizesAreRefused(int maxBatch, int tableWidth, int maxTokens, string parameter, string message)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new KvBatchLayout(maxBatch, tableWidth, maxTokens));
        Assert.Equal(parameter, e.ParamName);
        Assert.StartsWith("KvBatchLayout: ", e.Message);
        Assert.Contains(message, e.Message);
    }

    /// <summary>A bad step, described, with the message it must get; MixedStep's sequences are 2 (A), 1 (B), 0 (C).</summary>
    public static TheoryData<string, KvBatchEntry[], string> BadSteps => new()
    {
        { "empty", [], "the step has no sequences." },
        { "too many sequences", [new(2, 0, 1), new(1, 0, 1), new(0, 0, 1), new(3, 0, 1), new(4, 0, 1)],
            "the step has 5 sequences, but the layout (maxBatch) has room for 4." },
        { "count 0", [new(2, 0, 5), new(1, 37, 0)], "entries[1] (sequence 1) has count 0: each sequence in a step brings at least 1 new token." },
        { "negative cached", [new(2, -1, 1)], "entries[0] (sequence 2) has cached -1: a token count is >= 0." },
        { "twice", [new(2, 0, 5), new(0, 16, 3), new(2, 0, 1)],
            "entries[2] (sequence 2): the sequence is already in the step as entries[0]; give each sequence once." },
        { "beyond reserved", [new(1, 48, 1)], "entries[0] (sequence 1) needs 49 positions (cached 48 + count 1), but 48 are reserved; Reserve them first." },
        { "unknown sequence", [new(9, 0, 1)], "sequence 9 is unknown (AddSequence has given ids 0..3)." },
        { "freed sequence", [new(3, 0, 1)], "sequence 3 was freed (sequence ids are not reused)." },
        { "too many tokens", [new(2, 0, 5), new(0, 0, 19)], "the step has 24 new tokens, but the layout (maxTokens) has room for 12." },
        { "overflow", [new(1, int.MaxValue, 1)], "entries[0] (sequence 1) needs 2,147,483,648 positions (cached 2,147,483,647 + count 1), but 48 are reserved" },
    };

    [Theory, MemberData(nameof(BadSteps))]
    public void BadStepsAreRefusedAndLeaveTheBuffersAsTheyWere(string what, KvBatchEntry[] step, string message)
    {
        var (cache, good) = MixedStep();
        int freed = cache.AddSequence();
        cache.Free(freed); // id 3
        var layout = new KvBatchLayout(4, 4, 12);
        layout.Build(cache, good);

        var e = Assert.ThrowsAny<ArgumentException>(() => layout.Build(cache, step));
        Assert.True(e.Message.StartsWith("KvBatchLayout.Build: ", StringComparison.Ordinal) && e.Message.Contains(message, StringComparison.Ordinal),
            $"{what}: expected \"{message}\", got \"{e.Message}\"");
        Assert.Equal(ExpectedBlockTable, layout.BlockTable.ToArray());
        Assert.Equal(ExpectedSlotMapping, layout.SlotMapping.ToArray());
        Assert.Equal(ExpectedQueryStarts, layout.QueryStarts.ToArray());
        Assert.Equal(new KvBatchCounts(3, 9, 5, 38), layout.Counts);
    }

    [Fact]
    public void ASequenceWiderThanARowIsRefused()
    {
        var cache = new KvBlockManager(8, 16);
        int s = cache.AddSequence();
        cache.Reserve(s, 49);
        var layout = new KvBatchLayout(2, 3, 8);
        layout.Build(cache, [new KvBatchEntry(s, 47, 1)]); // 48 keys: 3 pages, fits
        var e = Assert.Throws<ArgumentException>(() => layout.Build(cache, [new KvBatchEntry(s, 48, 1)]));
        Assert.Equal("KvBatchLayout.Build: entries[0] (sequence 0) spans 4 pages of 16 (49 positions), more than a block table row holds (tableWidth 3). (Parameter 'entries')", e.Message);
    }

    [Fact]
    public void FillNamesTheDestinationThatIsTooShort()
    {
        var (cache, step) = MixedStep();
        void FillWith(int table, int lengths, int starts, int positions, int slots, int last) =>
            KvBatchLayout.Fill(cache, step, 4, new int[table], new int[lengths], new int[starts], new int[positions], new int[slots], new int[last]);

        FillWith(12, 3, 4, 9, 9, 3); // exactly enough
        AssertRefused(() => FillWith(12, 2, 4, 9, 9, 3), "sequenceLengths", "the step has 3 sequences, but sequenceLengths has room for 2.");
        AssertRefused(() => FillWith(12, 3, 4, 9, 9, 2), "lastTokenIndex", "the step has 3 sequences, but lastTokenIndex has room for 2.");
        AssertRefused(() => FillWith(12, 3, 3, 9, 9, 3), "queryStarts", "the step has 3 sequences, but queryStarts (batch + 1 entries) has room for 2.");
        AssertRefused(() => FillWith(11, 3, 4, 9, 9, 3), "blockTable", "the step has 3 sequences, but blockTable (11 entries / tableWidth 4) has room for 2.");
        AssertRefused(() => FillWith(12, 3, 4, 8, 9, 3), "positions", "the step has 9 new tokens, but positions has room for 8.");
        AssertRefused(() => FillWith(12, 3, 4, 9, 8, 3), "slotMapping", "the step has 9 new tokens, but slotMapping has room for 8.");
        AssertRefused(() => FillWith(12, 3, 0, 9, 9, 3), "queryStarts", "the step has 3 sequences, but queryStarts (batch + 1 entries) has room for 0.");

        var zeroWidth = Assert.Throws<ArgumentOutOfRangeException>(() =>
            KvBatchLayout.Fill(cache, step, 0, new int[12], new int[3], new int[4], new int[9], new int[9], new int[3]));
        Assert.Equal("tableWidth", zeroWidth.ParamName);
        Assert.Throws<ArgumentNullException>(() =>
            KvBatchLayout.Fill(null!, step, 4, new int[12], new int[3], new int[4], new int[9], new int[9], new int[3]));

        static void AssertRefused(Action fill, string parameter, string message)
        {
            var e = Assert.Throws<ArgumentException>(fill);
            Assert.Equal(parameter, e.ParamName);
            Assert.StartsWith("KvBatchLayout.Fill: " + message, e.Message);
        }
    }

    [Fact]
    public void FillRefusesOverlappingDestinationsBeforeWritingAny()
    {
        var (cache, step) = MixedStep();
        int[] memory = Poisoned(64);
        var span = memory.AsSpan();
        // Slices of one buffer are fine when they are disjoint...
        KvBatchLayout.Fill(cache, step, 4, span[..12], span[12..15], span[15..19], span[19..28], span[28..37], span[37..40]);
        Assert.Equal(ExpectedBlockTable[..12], memory[..12]);
        // ...not when two share memory.
        memory.AsSpan().Fill(Poison);
        var e = Assert.Throws<ArgumentException>(() =>
            KvBatchLayout.Fill(cache, step, 4, memory.AsSpan(0, 12), memory.AsSpan(12, 3), memory.AsSpan(15, 4), memory.AsSpan(19, 9), memory.AsSpan(27, 9), memory.AsSpan(40, 3)));
        Assert.Contains("two of the destinations overlap", e.Message);
        Assert.All(memory, value => Assert.Equal(Poison, value));
    }

    static int[] Poisoned(int length)
    {
        var array = new int[length];
        array.AsSpan().Fill(Poison);
        return array;
    }
}
