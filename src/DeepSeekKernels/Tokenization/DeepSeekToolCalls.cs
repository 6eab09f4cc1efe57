namespace DeepSeekKernels.Tokenization;

/// <summary>
/// Reads the tool calls out of a DeepSeek model's reply, the inverse of its chat template's tool-call layout:
/// <c>text&lt;｜tool▁calls▁begin｜&gt;&lt;｜tool▁call▁begin｜&gt;function&lt;｜tool▁sep｜&gt;NAME\n```json\nARGS\n```&lt;｜tool▁call▁end｜&gt;…&lt;｜tool▁calls▁end｜&gt;</c>
/// (DeepSeek-V3 and R1), or <c>&lt;｜tool▁call▁begin｜&gt;NAME&lt;｜tool▁sep｜&gt;ARGS&lt;｜tool▁call▁end｜&gt;</c> (the later templates).
/// Decode the reply with its special tokens kept, so the markers are in the text.
/// </summary>
public static class DeepSeekToolCalls
{
    /// <summary>The markers (fullwidth bars U+FF5C, "▁" U+2581), added tokens in DeepSeek's tokenizers.</summary>
    public const string CallsBegin = "<\uFF5Ctool\u2581calls\u2581begin\uFF5C>", CallsEnd = "<\uFF5Ctool\u2581calls\u2581end\uFF5C>",
        CallBegin = "<\uFF5Ctool\u2581call\u2581begin\uFF5C>", CallEnd = "<\uFF5Ctool\u2581call\u2581end\uFF5C>", Separator = "<\uFF5Ctool\u2581sep\uFF5C>";

    const string JsonFenceOpen = "\n```json\n", JsonFenceClose = "\n```";

    /// <summary>
    /// The reply's text before its tool calls (trimmed of the end-of-sentence token when <paramref name="eosToken"/> is
    /// given), the calls in order, and whether every call that was opened was closed (false: the reply stopped inside one,
    /// for instance at the token limit, and the unfinished call is left out).
    /// </summary>
    public static (string Content, IReadOnlyList<ToolCall> Calls, bool Complete) Parse(string reply, string? eosToken = null)
    {
        ArgumentNullException.ThrowIfNull(reply);
        if (eosToken is { Length: > 0 } && reply.EndsWith(eosToken, StringComparison.Ordinal))
            reply = reply[..^eosToken.Length];
        int begin = reply.IndexOf(CallsBegin, StringComparison.Ordinal);
        int firstCall = reply.IndexOf(CallBegin, StringComparison.Ordinal);
        if (begin < 0 && firstCall < 0)
            return (reply, [], true);
        int start = begin >= 0 && (firstCall < 0 || begin < firstCall) ? begin : firstCall;
        string content = reply[..start];
        var calls = new List<ToolCall>();
        bool complete = true;
        int at = start;
        while (true)
        {
            int open = reply.IndexOf(CallBegin, at, StringComparison.Ordinal);
            if (open < 0)
                break;
            int close = reply.IndexOf(CallEnd, open, StringComparison.Ordinal);
            if (close < 0)
            {
                complete = false;
                break;
            }
            string body = reply[(open + CallBegin.Length)..close];
            int separator = body.IndexOf(Separator, StringComparison.Ordinal);
            if (separator < 0)
            {
                complete = false;
                at = close + CallEnd.Length;
                continue;
            }
            string head = body[..separator], tail = body[(separator + Separator.Length)..];
            int fence = tail.IndexOf(JsonFenceOpen, StringComparison.Ordinal);
            if (fence >= 0 && tail.EndsWith(JsonFenceClose, StringComparison.Ordinal) && fence + JsonFenceOpen.Length <= tail.Length - JsonFenceClose.Length)
            {
                // V3 / R1: TYPE<sep>NAME\n```json\nARGS\n```
                string name = tail[..fence];
                string arguments = tail[(fence + JsonFenceOpen.Length)..^JsonFenceClose.Length];
                calls.Add(new ToolCall(name, arguments, Type: head.Length > 0 ? head : "function"));
            }
            else
            {
                calls.Add(new ToolCall(head, tail)); // later templates: NAME<sep>ARGS
            }
            at = close + CallEnd.Length;
        }
        if (begin >= 0 && reply.IndexOf(CallsEnd, start, StringComparison.Ordinal) < 0)
            complete = false;
        return (content, calls, complete);
    }
}
