using System.IO.MemoryMappedFiles;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using DeepSeekKernels.Numerics;

namespace DeepSeekKernels.Checkpoints;

/// <summary>
/// A safetensors file, memory-mapped read-only. The format: an 8-byte little-endian header length N, N bytes
/// of UTF-8 JSON mapping each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into
/// the data section, which starts at 8 + N) and an optional "__metadata__" string-to-string object, then the
/// data. <see cref="Open"/> validates the whole header before anything is read; any fault is a
/// <see cref="CheckpointException"/> naming the file and the tensor.
/// Spans returned by <see cref="GetBytes(TensorInfo)"/> point into the mapping and must not be used after
/// <see cref="Dispose"/>. Reads are safe from several threads at once.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>Largest header accepted, in bytes (the bound the reference implementation uses).</summary>
    public const long MaxHeaderLength = 100_000_000;

    /// <summary>Elements converted per step by the read helpers (keeps every span well under 2 GB).</summary>
    const int ChunkElements = 1 << 20;

    readonly MemoryMappedFile _map;
    readonly MemoryMappedViewAccessor _view;
    readonly byte* _base;
    int _disposed;

    SafetensorsFile(string path, long length, SafetensorsHeader header, MemoryMappedFile map, MemoryMappedViewAccessor view)
    {
        Path = path;
        Length = length;
        HeaderLength = header.Length;
        Metadata = header.Metadata;
        _map = map;
        _view = view;
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _base = pointer + view.PointerOffset;
        var tensors = new Dictionary<string, TensorInfo>(header.Entries.Count, StringComparer.Ordinal);
        foreach (var e in header.Entries)
            tensors.Add(e.Name, new TensorInfo(e.Name, e.DType, e.Shape, e.ElementCount, 8 + header.Length + e.Begin, e.End - e.Begin, this));
        Tensors = tensors;
    }

    /// <summary>
    /// Opens and validates <paramref name="path"/>: header length within bounds and the file, header valid UTF-8
    /// JSON object, every dtype known, shapes non-negative, data_offsets two non-negative integers with
    /// begin &lt;= end, byte count = product(shape) * dtype size, every range inside the file, no two ranges
    /// overlapping, no duplicate names, "__metadata__" strings only.
    /// </summary>
    /// <exception cref="CheckpointException">The file is missing, unreadable or malformed; the message names it and the tensor at fault.</exception>
    public static SafetensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = System.IO.Path.GetFullPath(path);
        FileStream? stream = null;
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            try
            {
                stream = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new CheckpointException($"{fullPath}: cannot open the safetensors file: {ex.Message}", fullPath, null, ex);
            }
            long length = stream.Length;
            var header = SafetensorsHeader.Read(stream, fullPath, length);
            map = MemoryMappedFile.CreateFromFile(stream, mapName: null, capacity: 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            stream = null; // owned by the map now
            view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            var file = new SafetensorsFile(fullPath, length, header, map, view);
            map = null;
            view = null;
            return file;
        }
        catch (IOException ex)
        {
            throw new CheckpointException($"{fullPath}: cannot read the safetensors file: {ex.Message}", fullPath, null, ex);
        }
        finally
        {
            view?.Dispose();
            map?.Dispose();
            stream?.Dispose();
        }
    }

    /// <summary>Full path of the file.</summary>
    public string Path { get; }

    /// <summary>Size of the file in bytes.</summary>
    public long Length { get; }

    /// <summary>N, the length of the JSON header; the data section starts at 8 + N.</summary>
    public long HeaderLength { get; }

    /// <summary>Every tensor, by name.</summary>
    public IReadOnlyDictionary<string, TensorInfo> Tensors { get; }

    /// <summary>The header's "__metadata__" (empty when absent); PyTorch writers put {"format": "pt"} here.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The tensor called <paramref name="name"/>.</summary>
    /// <exception cref="CheckpointException">There is none; the message names the tensor and the file.</exception>
    public TensorInfo GetTensor(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!Tensors.TryGetValue(name, out var tensor))
            throw new CheckpointException($"tensor '{name}' is not in {Path}", Path, name);
        return tensor;
    }

    /// <summary>The bytes of <paramref name="tensor"/>, straight from the mapping (no copy).</summary>
    /// <exception cref="ArgumentException"><paramref name="tensor"/> belongs to another file, or is 2 GB or more (read it in pieces with <see cref="GetBytes(TensorInfo, long, int)"/>).</exception>
    /// <exception cref="ObjectDisposedException">The file was disposed.</exception>
    public ReadOnlySpan<byte> GetBytes(TensorInfo tensor)
    {
        CheckOwned(tensor);
        if (tensor.ByteLength > int.MaxValue)
            throw new ArgumentException($"{Path}: tensor '{tensor.Name}' is {tensor.ByteLength} bytes, too large for one span; read it in pieces with GetBytes(tensor, start, length).", nameof(tensor));
        return new ReadOnlySpan<byte>(_base + tensor.ByteOffset, (int)tensor.ByteLength);
    }

    /// <summary>
    /// The address of <paramref name="tensor"/>'s first byte in the read-only mapping, valid until <see cref="Dispose"/>: for
    /// using the data in place (the CPU's weights), never for writing.
    /// </summary>
    internal nint AddressOf(TensorInfo tensor)
    {
        CheckOwned(tensor);
        return (nint)(_base + tensor.ByteOffset);
    }

    /// <summary>
    /// Tells the kernel this process is done with bytes [start, start + length) of <paramref name="tensor"/> (Linux:
    /// madvise MADV_DONTNEED on the whole pages inside the range): they leave the process's resident set and stay in the page
    /// cache, and a later read maps them again. The loader calls it after quantising a band, so a quantised model's peak
    /// resident memory is its own weights, not also every page of the checkpoint it read. A no-op elsewhere or on failure.
    /// </summary>
    internal void ReleasePages(TensorInfo tensor, long start, long length)
    {
        CheckOwned(tensor);
        if (length <= 0)
            return;
        long begin = (long)(_base + tensor.ByteOffset + start);
        Runtime.MappedPages.Release(begin, begin + length);
    }

    /// <summary>Bytes [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>) of <paramref name="tensor"/>'s data, from the mapping.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the tensor.</exception>
    public ReadOnlySpan<byte> GetBytes(TensorInfo tensor, long start, int length)
    {
        CheckOwned(tensor);
        if (start < 0 || start > tensor.ByteLength)
            throw new ArgumentOutOfRangeException(nameof(start), start, $"{Path}: tensor '{tensor.Name}' has {tensor.ByteLength} bytes.");
        if (length < 0 || length > tensor.ByteLength - start)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"{Path}: tensor '{tensor.Name}' has {tensor.ByteLength} bytes; {start} + {length} is past its end.");
        return new ReadOnlySpan<byte>(_base + tensor.ByteOffset + start, length);
    }

    /// <summary>
    /// Copies <paramref name="tensor"/>'s elements, as stored, into <paramref name="destination"/>
    /// (<c>BFloat16</c> for BF16, <c>Float8E4M3</c> or <c>byte</c> for F8_E4M3, <c>float</c> for F32, ...).
    /// </summary>
    /// <exception cref="ArgumentException"><typeparamref name="T"/>'s size is not the dtype's, or <paramref name="destination"/> is shorter than the tensor.</exception>
    public void CopyTo<T>(TensorInfo tensor, Span<T> destination) where T : unmanaged
    {
        CheckOwned(tensor);
        int size = tensor.DType.SizeInBytes();
        if (Unsafe.SizeOf<T>() != size)
            throw new ArgumentException($"{Path}: tensor '{tensor.Name}' is {tensor.DType.HeaderName()} ({size} bytes per element), but {typeof(T).Name} is {Unsafe.SizeOf<T>()} bytes.", nameof(destination));
        CheckDestination(tensor, destination.Length);
        fixed (T* d = destination)
            Buffer.MemoryCopy(_base + tensor.ByteOffset, d, tensor.ByteLength, tensor.ByteLength);
    }

    /// <summary>
    /// Converts <paramref name="tensor"/> to float32 into the first <see cref="TensorInfo.ElementCount"/>
    /// elements of <paramref name="destination"/>: F32 copied, BF16/F16/F8_E4M3/F8_E5M2 widened exactly.
    /// </summary>
    /// <exception cref="CheckpointException">The tensor holds another dtype (integers, F64).</exception>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than the tensor.</exception>
    public void ReadAsFloat32(TensorInfo tensor, Span<float> destination)
    {
        CheckOwned(tensor);
        if (!ReadsAsFloat32(tensor.DType))
            throw NotReadableAsFloat32(tensor);
        CheckDestination(tensor, destination.Length);
        byte* source = _base + tensor.ByteOffset;
        long count = tensor.ElementCount;
        for (long done = 0; done < count; done += ChunkElements)
        {
            int n = (int)Math.Min(ChunkElements, count - done);
            var d = destination.Slice((int)done, n);
            switch (tensor.DType)
            {
                case SafetensorsDType.F32:
                    new ReadOnlySpan<float>(source + done * 4, n).CopyTo(d);
                    break;
                case SafetensorsDType.BF16:
                    BFloat16Conversions.ToSingle(new ReadOnlySpan<BFloat16>(source + done * 2, n), d);
                    break;
                case SafetensorsDType.F16:
                    TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(source + done * 2, n), d);
                    break;
                case SafetensorsDType.F8_E4M3:
                    var e4m3 = new ReadOnlySpan<byte>(source + done, n);
                    for (int i = 0; i < n; i++)
                        d[i] = Float8E4M3.FromBits(e4m3[i]).ToSingle();
                    break;
                default: // F8_E5M2: the top byte of a half
                    var e5m2 = new ReadOnlySpan<byte>(source + done, n);
                    for (int i = 0; i < n; i++)
                        d[i] = (float)BitConverter.UInt16BitsToHalf((ushort)(e5m2[i] << 8));
                    break;
            }
        }
    }

    /// <summary>True for the dtypes <see cref="ReadAsFloat32(TensorInfo, Span{float})"/> reads: F32, BF16, F16, F8_E4M3, F8_E5M2.</summary>
    internal static bool ReadsAsFloat32(SafetensorsDType dtype) =>
        dtype is SafetensorsDType.F32 or SafetensorsDType.BF16 or SafetensorsDType.F16 or SafetensorsDType.F8_E4M3 or SafetensorsDType.F8_E5M2;

    /// <summary>The error <see cref="ReadAsFloat32(TensorInfo, Span{float})"/> throws for a tensor of another dtype (also raised by checks that read only headers).</summary>
    internal static CheckpointException NotReadableAsFloat32(TensorInfo tensor) => new(
        $"{tensor.File.Path}: tensor '{tensor.Name}' is {tensor.DType.HeaderName()}; ReadAsFloat32 reads F32, BF16, F16, F8_E4M3 or F8_E5M2.", tensor.File.Path, tensor.Name);

    /// <summary>
    /// Converts an integer tensor (I64 as stored; I32, I16, I8, U8, BOOL widened) to int64 into the first
    /// <see cref="TensorInfo.ElementCount"/> elements of <paramref name="destination"/>.
    /// </summary>
    /// <exception cref="CheckpointException">The tensor holds floating-point values.</exception>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than the tensor.</exception>
    public void ReadAsInt64(TensorInfo tensor, Span<long> destination)
    {
        CheckOwned(tensor);
        if (tensor.DType is not (SafetensorsDType.I64 or SafetensorsDType.I32 or SafetensorsDType.I16 or SafetensorsDType.I8 or SafetensorsDType.U8 or SafetensorsDType.BOOL))
            throw new CheckpointException($"{Path}: tensor '{tensor.Name}' is {tensor.DType.HeaderName()}; ReadAsInt64 reads I64, I32, I16, I8, U8 or BOOL.", Path, tensor.Name);
        CheckDestination(tensor, destination.Length);
        byte* source = _base + tensor.ByteOffset;
        int count = (int)tensor.ElementCount;
        switch (tensor.DType)
        {
            case SafetensorsDType.I64:
                new ReadOnlySpan<long>(source, count).CopyTo(destination);
                break;
            case SafetensorsDType.I32:
                var i32 = new ReadOnlySpan<int>(source, count);
                for (int i = 0; i < count; i++) destination[i] = i32[i];
                break;
            case SafetensorsDType.I16:
                var i16 = new ReadOnlySpan<short>(source, count);
                for (int i = 0; i < count; i++) destination[i] = i16[i];
                break;
            case SafetensorsDType.I8:
                var i8 = new ReadOnlySpan<sbyte>(source, count);
                for (int i = 0; i < count; i++) destination[i] = i8[i];
                break;
            default: // U8, BOOL
                var u8 = new ReadOnlySpan<byte>(source, count);
                for (int i = 0; i < count; i++) destination[i] = u8[i];
                break;
        }
    }

    /// <summary>The tensor called <paramref name="name"/> as a new float32 array (see <see cref="ReadAsFloat32(TensorInfo, Span{float})"/>).</summary>
    public float[] ReadAsFloat32(string name)
    {
        var tensor = GetTensor(name);
        var values = new float[CheckArrayLength(tensor)];
        ReadAsFloat32(tensor, values);
        return values;
    }

    /// <summary>The tensor called <paramref name="name"/> as a new int64 array (see <see cref="ReadAsInt64(TensorInfo, Span{long})"/>).</summary>
    public long[] ReadAsInt64(string name)
    {
        var tensor = GetTensor(name);
        var values = new long[CheckArrayLength(tensor)];
        ReadAsInt64(tensor, values);
        return values;
    }

    /// <summary>Unmaps the file. Spans obtained from it must not be used afterwards.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    /// <summary>"path (n tensors)".</summary>
    public override string ToString() => $"{Path} ({Tensors.Count} tensors)";

    void CheckOwned(TensorInfo tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (!ReferenceEquals(tensor.File, this))
            throw new ArgumentException($"tensor '{tensor.Name}' belongs to {tensor.File.Path}, not to {Path}.", nameof(tensor));
    }

    void CheckDestination(TensorInfo tensor, int destinationLength)
    {
        if (destinationLength < tensor.ElementCount)
            throw new ArgumentException($"{Path}: tensor '{tensor.Name}' has {tensor.ElementCount} elements but destination has room for {destinationLength}.", "destination");
    }

    int CheckArrayLength(TensorInfo tensor)
    {
        if (tensor.ElementCount > Array.MaxLength)
            throw new CheckpointException($"{Path}: tensor '{tensor.Name}' has {tensor.ElementCount} elements, more than one array holds.", Path, tensor.Name);
        return (int)tensor.ElementCount;
    }
}
