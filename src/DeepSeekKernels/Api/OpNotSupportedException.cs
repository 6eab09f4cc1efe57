namespace DeepSeekKernels;

/// <summary>
/// A strict <see cref="Ops"/> was asked for a call its backend does not support (see <see cref="Ops.Supports(in OpSignature)"/>).
/// The message names the signature and the backend and says how to opt in to the reference fallback
/// (<see cref="Ops.WithReferenceFallback"/>; in dsk, <c>--allow-fallback</c>). Nothing was written.
/// </summary>
public sealed class OpNotSupportedException : NotSupportedException
{
    /// <summary>Creates the exception for <paramref name="signature"/> on <paramref name="backend"/>, with the backend's reason.</summary>
    public OpNotSupportedException(OpSignature signature, Backend backend, string? reason)
        : base($"{signature} is not supported by the {backend} backend{(reason is null ? "" : $" ({reason})")}; "
            + "to run it on the reference backend instead, use Ops.WithReferenceFallback() (dsk: --allow-fallback).")
    {
        Signature = signature;
        Backend = backend;
        Reason = reason;
    }

    /// <summary>The call that was refused.</summary>
    public OpSignature Signature { get; }

    /// <summary>The backend that refused it.</summary>
    public Backend Backend { get; }

    /// <summary>Why, in the backend's words (e.g. "no Linear kernel yet"), or null.</summary>
    public string? Reason { get; }
}
