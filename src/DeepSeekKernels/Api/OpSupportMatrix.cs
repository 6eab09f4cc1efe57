namespace DeepSeekKernels;

/// <summary>
/// Which backends support which op signatures (<see cref="Ops.SupportMatrix"/>): a row per signature, a column per
/// backend, as llama.cpp's test-backend-ops reports it. Built from each backend's Supports, nothing is run.
/// </summary>
public sealed class OpSupportMatrix
{
    readonly bool[,] _supported;

    internal OpSupportMatrix(IReadOnlyList<Backend> backends, IReadOnlyList<string> labels, IReadOnlyList<OpSignature> signatures, bool[,] supported)
    {
        Backends = backends;
        Labels = labels;
        Signatures = signatures;
        _supported = supported;
    }

    /// <summary>The columns: the backend of each Ops, in the order given.</summary>
    public IReadOnlyList<Backend> Backends { get; }

    /// <summary>The columns' names, backend and device (<see cref="Ops.Label"/>): "reference", "ilgpu-cpu", "ilgpu-cuda", "native".</summary>
    public IReadOnlyList<string> Labels { get; }

    /// <summary>The rows (<see cref="Ops.SupportSignatures"/>).</summary>
    public IReadOnlyList<OpSignature> Signatures { get; }

    /// <summary>Whether column <paramref name="backend"/> supports row <paramref name="signature"/>.</summary>
    public bool this[int signature, int backend] => _supported[signature, backend];

    /// <summary>Whether the <paramref name="backend"/> column supports <paramref name="signature"/> (first column of that backend).</summary>
    public bool Supports(OpSignature signature, Backend backend)
    {
        int row = Signatures.ToList().IndexOf(signature);
        int column = Backends.ToList().IndexOf(backend);
        if (column >= 0 && Backends.Count(b => b == backend) > 1)
            throw new ArgumentException($"The {backend} backend is more than one column ({string.Join(", ", Labels)}); use the column index.", nameof(backend));
        if (row < 0)
            throw new ArgumentException($"{signature} is not a row of this matrix.", nameof(signature));
        if (column < 0)
            throw new ArgumentException($"The {backend} backend is not a column of this matrix.", nameof(backend));
        return _supported[row, column];
    }
}
