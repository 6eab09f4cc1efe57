using DeepSeekKernels.Caching;

namespace DeepSeekKernels.Tests.Caching;

/// <summary>
/// KvBlockManager: page accounting, all-or-nothing reservation, truncation, pages out of order, slots, refusals,
/// and a seeded random walk of add/reserve/truncate/free checked against a model of the free pages.
/// </summary>
public class KvBlockManagerTests
{
    [Theory]
    [InlineData(0, 64, "pageCount", "at least 1 page")]
    [InlineData(-3, 64, "pageCount", "at least 1 page")]
    [InlineData(10, 15, "pageSize", "pageSize 15 is outside 16..256")]
    [InlineData(10, 257, "pageSize", "pageSize 257 is outside 16..256")]
    [InlineData(10, 0, "pageSize", "outside 16..256")]
    [InlineData(int.MaxValue / 16 + 1, 16, "pageCount", "slot numbers are int32")]
    [InlineData(8_388_609, 256, "pageCount", "2,147,483,904 slots")]
    public void BadSizesAreRefusedWithTheirValues(int pageCount, int pageSize, string parameter, string message)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new KvBlockManager(pageCount, pageSize));
        Assert.Equal(parameter, e.ParamName);
        Assert.StartsWith("KvBlockManager: ", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void EveryPageSizeFrom16To256Works()
    {
        for (int pageSize = KvBlockManager.MinPageSize; pageSize <= KvBlockManager.MaxPageSize; pageSize++)
        {
            var cache = new KvBlockManager(5, pageSize);
            int s = cache.AddSequence();
            cache.Reserve(s, 2 * pageSize + 1);
            Assert.Equal([0, 1, 2], cache.PagesOf(s));
            Assert.Equal(3 * pageSize, cache.ReservedLength(s));
            Assert.Equal(2, cache.FreePages);
            Assert.Equal(pageSize + 7, cache.Slot(s, pageSize + 7)); // page 1, offset 7
            Assert.Equal(3 * pageSize - 1, cache.Slot(s, 3 * pageSize - 1));
        }
        // The largest cache an int32 slot reaches is accepted.
        Assert.Equal(int.MaxValue / 16, new KvBlockManager(int.MaxValue / 16, 16).FreePages);
    }

    [Fact]
    public void PagesNeededIsTheCeilingOfLengthOverPageSize()
    {
        var cache = new KvBlockManager(4, 64);
        Assert.Equal(0, cache.PagesNeeded(0));
        Assert.Equal(1, cache.PagesNeeded(1));
        Assert.Equal(1, cache.PagesNeeded(64));
        Assert.Equal(2, cache.PagesNeeded(65));
        Assert.Equal(int.MaxValue / 64 + 1, cache.PagesNeeded(int.MaxValue)); // no overflow near int.MaxValue
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => cache.PagesNeeded(-1));
        Assert.Contains("length -1 is negative", e.Message);
    }

    [Fact]
    public void ReservingTakesTheLowestFreePagesAndFreeingReturnsThem()
    {
        var cache = new KvBlockManager(10, 16);
        Assert.Equal(10, cache.PageCount);
        Assert.Equal(16, cache.PageSize);
        Assert.Equal(10, cache.FreePages);
        int a = cache.AddSequence(), b = cache.AddSequence();
        Assert.Equal((0, 1), (a, b));
        Assert.Equal(2, cache.SequenceCount);
        Assert.Empty(cache.PagesOf(a));
        Assert.Equal(0, cache.ReservedLength(a));

        Assert.True(cache.TryReserve(a, 100)); // ceil(100 / 16) = 7 pages
        Assert.Equal([0, 1, 2, 3, 4, 5, 6], cache.PagesOf(a));
        Assert.Equal(112, cache.ReservedLength(a));
        Assert.Equal(3, cache.FreePages);

        Assert.True(cache.TryReserve(a, 50)); // already holds it: nothing changes, nothing is given back
        Assert.True(cache.TryReserve(a, 112));
        Assert.Equal(7, cache.PagesOf(a).Count);
        Assert.True(cache.TryReserve(b, 0));
        Assert.Empty(cache.PagesOf(b));

        cache.Reserve(b, 17);
        Assert.Equal([7, 8], cache.PagesOf(b));
        Assert.Equal(1, cache.FreePages);

        cache.Free(a);
        Assert.Equal(8, cache.FreePages);
        Assert.Equal(1, cache.SequenceCount);
        cache.Free(b);
        Assert.Equal(10, cache.FreePages);
        Assert.Equal(0, cache.SequenceCount);

        int c = cache.AddSequence();
        Assert.Equal(2, c); // ids are not reused
        cache.Reserve(c, 10 * 16); // the whole cache, lowest first again
        Assert.Equal(Enumerable.Range(0, 10), cache.PagesOf(c));
        Assert.Equal(0, cache.FreePages);
    }

    [Fact]
    public void AFailedReservationChangesNothing()
    {
        var cache = new KvBlockManager(4, 16);
        int a = cache.AddSequence(), b = cache.AddSequence();
        cache.Reserve(a, 32);
        cache.Reserve(b, 1);
        Assert.Equal(1, cache.FreePages);

        Assert.False(cache.TryReserve(b, 48)); // needs 2 more, 1 free
        Assert.Equal([2], cache.PagesOf(b));
        Assert.Equal(1, cache.FreePages);

        var e = Assert.Throws<KvCacheFullException>(() => cache.Reserve(b, 64));
        Assert.Equal("KvBlockManager.Reserve: sequence 1 needs 3 more pages of 16 tokens to hold 64 positions (it owns 1), " +
            "but only 1 of 4 pages are free.", e.Message);
        Assert.Equal((1, 3, 1), (e.Sequence, e.PagesNeeded, e.PagesFree));
        Assert.Equal([2], cache.PagesOf(b));
        Assert.Equal([0, 1], cache.PagesOf(a));
        Assert.Equal(1, cache.FreePages);

        Assert.False(cache.TryReserve(b, int.MaxValue)); // far beyond the whole cache
        Assert.True(cache.TryReserve(b, 32)); // exactly the free page
        Assert.Equal([2, 3], cache.PagesOf(b));
        Assert.Equal(0, cache.FreePages);
    }

    [Fact]
    public void TruncateGivesBackThePagesBeyondTheLengthKept()
    {
        var cache = new KvBlockManager(8, 16);
        int a = cache.AddSequence();
        cache.Reserve(a, 80); // pages 0..4
        cache.Truncate(a, 33); // 3 pages hold 33 positions
        Assert.Equal([0, 1, 2], cache.PagesOf(a));
        Assert.Equal(5, cache.FreePages);
        Assert.Equal(2 * 16 + 0, cache.Slot(a, 32));

        cache.Truncate(a, 48); // exactly 3 pages: nothing to give back
        Assert.Equal([0, 1, 2], cache.PagesOf(a));
        cache.Truncate(a, 32);
        Assert.Equal([0, 1], cache.PagesOf(a));

        var e = Assert.Throws<ArgumentOutOfRangeException>(() => cache.Truncate(a, 33));
        Assert.Equal("length", e.ParamName);
        Assert.Contains("length 33 is beyond the 32 positions reserved for sequence 0; truncate shortens, Reserve grows.", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Truncate(a, -1));

        cache.Truncate(a, 0);
        Assert.Empty(cache.PagesOf(a));
        Assert.Equal(8, cache.FreePages);
        cache.Reserve(a, 1); // the lowest free page again
        Assert.Equal([0], cache.PagesOf(a));
    }

    [Fact]
    public void PagesOutOfOrderAddressTheRightSlots()
    {
        var cache = new KvBlockManager(8, 16);
        int a = cache.AddSequence(), b = cache.AddSequence(), c = cache.AddSequence();
        cache.Reserve(a, 32); // 0, 1
        cache.Reserve(b, 32); // 2, 3
        cache.Reserve(c, 16); // 4
        cache.Free(a);
        cache.Reserve(c, 5 * 16); // grows into the hole a left, then past b: 4, 0, 1, 5, 6
        Assert.Equal([4, 0, 1, 5, 6], cache.PagesOf(c));
        Assert.Equal(1, cache.FreePages);

        int[] pages = [4, 0, 1, 5, 6];
        for (int position = 0; position < 80; position++)
            Assert.Equal(pages[position / 16] * 16 + position % 16, cache.Slot(c, position));
        Assert.Equal(4 * 16 + 15, cache.Slot(c, 15));
        Assert.Equal(0, cache.Slot(c, 16));
        Assert.Equal(5 * 16 + 3, cache.Slot(c, 51));

        cache.Free(b);
        int d = cache.AddSequence();
        cache.Reserve(d, 40); // 2, 3, 7
        Assert.Equal([2, 3, 7], cache.PagesOf(d));
        Assert.Equal(7 * 16 + 7, cache.Slot(d, 39));
    }

    [Fact]
    public void ASlotBeyondTheReservedPagesIsRefused()
    {
        var cache = new KvBlockManager(4, 16);
        int a = cache.AddSequence();
        var none = Assert.Throws<ArgumentOutOfRangeException>(() => cache.Slot(a, 0));
        Assert.Contains("position 0 is outside the 0 positions reserved for sequence 0 (0 pages of 16); reserve first.", none.Message);
        cache.Reserve(a, 20); // 2 pages: positions 0..31 have slots
        Assert.Equal(31, cache.Slot(a, 31));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => cache.Slot(a, 32));
        Assert.Equal("position", e.ParamName);
        Assert.StartsWith("KvBlockManager.Slot: position 32 is outside the 32 positions reserved for sequence 0 (2 pages of 16)", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Slot(a, -1));
    }

    [Fact]
    public void UnknownAndFreedSequencesAreRefusedByName()
    {
        var cache = new KvBlockManager(4, 16);
        var early = Assert.Throws<ArgumentException>(() => cache.PagesOf(0));
        Assert.Equal("KvBlockManager.PagesOf: sequence 0 is unknown (AddSequence has given no ids yet). (Parameter 'sequence')", early.Message);

        int a = cache.AddSequence(), b = cache.AddSequence();
        cache.Reserve(a, 16);
        cache.Free(a);
        var calls = new (string Method, Action<int> Call)[]
        {
            ("TryReserve", s => cache.TryReserve(s, 1)),
            ("Reserve", s => cache.Reserve(s, 1)),
            ("Truncate", s => cache.Truncate(s, 0)),
            ("Free", cache.Free),
            ("PagesOf", s => cache.PagesOf(s)),
            ("ReservedLength", s => cache.ReservedLength(s)),
            ("Slot", s => cache.Slot(s, 0)),
        };
        foreach (var (method, call) in calls)
        {
            var freed = Assert.Throws<ArgumentException>(() => call(a));
            Assert.Equal("sequence", freed.ParamName);
            Assert.StartsWith($"KvBlockManager.{method}: sequence 0 was freed (sequence ids are not reused).", freed.Message);
            foreach (int unknown in new[] { 2, -1, int.MaxValue })
            {
                var e = Assert.Throws<ArgumentException>(() => call(unknown));
                Assert.StartsWith($"KvBlockManager.{method}: sequence {unknown} is unknown (AddSequence has given ids 0..1).", e.Message);
            }
        }
        Assert.Equal(4, cache.FreePages); // the refused calls changed nothing
        Assert.Empty(cache.PagesOf(b));

        var negative = Assert.Throws<ArgumentOutOfRangeException>(() => cache.Reserve(b, -5));
        Assert.StartsWith("KvBlockManager.Reserve: length -5 is negative.", negative.Message);
    }

    [Fact]
    public void PagesOfIsASnapshot()
    {
        var cache = new KvBlockManager(4, 16);
        int a = cache.AddSequence();
        cache.Reserve(a, 16);
        var before = cache.PagesOf(a);
        cache.Reserve(a, 48);
        Assert.Equal([0], before);
        Assert.Equal([0, 1, 2], cache.PagesOf(a));
    }

    /// <summary>
    /// Random add/reserve/truncate/free steps (seeded) against a model of the free pages: every page has at most one
    /// owner, FreePages + pages owned == PageCount after every step, each new page is the lowest free one, a failed
    /// reservation changes nothing, and slots stay inside each sequence's own pages.
    /// </summary>
    [Theory]
    [InlineData(1, 37, 16)]
    [InlineData(2, 37, 16)]
    [InlineData(3, 64, 64)]
    [InlineData(4, 5, 256)]
    [InlineData(5, 90, 17)]
    public void RandomWalksNeverGiveAPageTwice(int seed, int pageCount, int pageSize)
    {
        var random = new Random(seed);
        var cache = new KvBlockManager(pageCount, pageSize);
        var owned = new Dictionary<int, List<int>>(); // the test's own record of each live sequence's pages
        var free = new SortedSet<int>(Enumerable.Range(0, pageCount));
        int reserves = 0, refusals = 0, truncates = 0, frees = 0;

        for (int step = 0; step < 4000; step++)
        {
            int choice = random.Next(100);
            if (owned.Count == 0 || choice < 10)
            {
                int s = cache.AddSequence();
                Assert.False(owned.ContainsKey(s));
                owned[s] = [];
            }
            else
            {
                int s = owned.Keys.ElementAt(random.Next(owned.Count));
                var pages = owned[s];
                if (choice < 70)
                {
                    int length = pages.Count * pageSize + random.Next(-pageSize, 12 * pageSize);
                    length = Math.Max(0, length);
                    int more = Math.Max(0, cache.PagesNeeded(length) - pages.Count);
                    bool ok = cache.TryReserve(s, length);
                    Assert.Equal(more <= free.Count, ok);
                    if (ok)
                    {
                        for (int i = 0; i < more; i++)
                        {
                            int lowest = free.Min;
                            free.Remove(lowest);
                            pages.Add(lowest);
                        }
                        reserves++;
                    }
                    else
                    {
                        refusals++;
                    }
                }
                else if (choice < 85)
                {
                    int length = random.Next(pages.Count * pageSize + 1);
                    cache.Truncate(s, length);
                    int keep = cache.PagesNeeded(length);
                    foreach (int page in pages.Skip(keep))
                        Assert.True(free.Add(page), $"step {step}: page {page} given back twice");
                    pages.RemoveRange(keep, pages.Count - keep);
                    truncates++;
                }
                else
                {
                    cache.Free(s);
                    foreach (int page in pages)
                        Assert.True(free.Add(page), $"step {step}: page {page} given back twice");
                    owned.Remove(s);
                    frees++;
                }
            }

            var everyPage = new HashSet<int>();
            foreach (var (s, pages) in owned)
            {
                Assert.Equal(pages, cache.PagesOf(s));
                Assert.Equal(pages.Count * pageSize, cache.ReservedLength(s));
                foreach (int page in pages)
                {
                    Assert.InRange(page, 0, pageCount - 1);
                    Assert.True(everyPage.Add(page), $"step {step}: page {page} has two owners");
                    Assert.DoesNotContain(page, free);
                }
                if (pages.Count > 0)
                {
                    int position = random.Next(pages.Count * pageSize);
                    Assert.Equal(pages[position / pageSize], cache.Slot(s, position) / pageSize);
                }
            }
            Assert.Equal(pageCount, cache.FreePages + everyPage.Count);
            Assert.Equal(free.Count, cache.FreePages);
            Assert.Equal(owned.Count, cache.SequenceCount);
        }
        Assert.True(reserves > 100 && refusals > 10 && truncates > 100 && frees > 50,
            $"the walk did not reach every case: {reserves} reserves, {refusals} refusals, {truncates} truncates, {frees} frees");
    }
}
