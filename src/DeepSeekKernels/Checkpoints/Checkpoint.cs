namespace DeepSeekKernels.Checkpoints;

/// <summary>
/// A Hugging Face model folder: config.json and the weights, from <c>model.safetensors.index.json</c> (a
/// sharded checkpoint) when present, else from <c>model.safetensors</c>. Every file is validated and every
/// shard memory-mapped by <see cref="Open"/>; nothing is copied until a tensor is read. Tensors are looked up
/// by their Hugging Face names. Dispose it to unmap the files; spans from <see cref="GetBytes(TensorInfo)"/> must not
/// be used afterwards.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    /// <summary>The config file every model folder needs.</summary>
    public const string ConfigFileName = "config.json";

    /// <summary>The weights of an unsharded checkpoint.</summary>
    public const string SingleFileName = "model.safetensors";

    /// <summary>The index of a sharded checkpoint (tensor name -> shard file).</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    readonly SafetensorsFile[] _files;
    readonly Dictionary<string, TensorInfo> _tensors;

    Checkpoint(string folder, ModelConfig config, string? indexPath, SafetensorsFile[] files, Dictionary<string, TensorInfo> tensors)
    {
        Folder = folder;
        Config = config;
        IndexPath = indexPath;
        _files = files;
        _tensors = tensors;
        Tensors = tensors.Values.OrderBy(t => t.Name, StringComparer.Ordinal).ToArray();
        var bytes = new Dictionary<SafetensorsDType, long>();
        foreach (var t in Tensors)
        {
            bytes[t.DType] = bytes.GetValueOrDefault(t.DType) + t.ByteLength;
            TotalBytes += t.ByteLength;
        }
        BytesByDType = bytes;
    }

    /// <summary>
    /// Opens the model folder <paramref name="folder"/>: reads and checks config.json, then opens and validates
    /// the weights. With an index, every shard it names must exist and hold every tensor it maps there (tensors
    /// a shard holds but the index does not map are left out); without one, model.safetensors must exist.
    /// </summary>
    /// <exception cref="CheckpointException">The folder, config.json or weights are missing or malformed; the message names the file and tensor.</exception>
    /// <exception cref="UnsupportedModelException">config.json describes a model the runner does not implement.</exception>
    public static Checkpoint Open(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder));
        if (File.Exists(full))
            throw new CheckpointException($"{full} is a file; a checkpoint is a folder holding {ConfigFileName} and {SingleFileName} or {IndexFileName}", full, null);
        if (!Directory.Exists(full))
            throw new CheckpointException($"model folder {full} does not exist", full, null);
        string configPath = Path.Combine(full, ConfigFileName);
        if (!File.Exists(configPath))
            throw new CheckpointException($"{full}: no {ConfigFileName} (a Hugging Face model folder needs one)", full, null);
        var config = ModelConfig.Load(configPath);

        string indexPath = Path.Combine(full, IndexFileName);
        string singlePath = Path.Combine(full, SingleFileName);
        if (File.Exists(indexPath))
            return OpenSharded(full, config, indexPath);
        if (File.Exists(singlePath))
        {
            var file = SafetensorsFile.Open(singlePath);
            return new Checkpoint(full, config, null, [file], new Dictionary<string, TensorInfo>(file.Tensors, StringComparer.Ordinal));
        }
        throw new CheckpointException($"{full}: no weights; looked for {IndexFileName} (sharded) and {SingleFileName}", full, null);
    }

    static Checkpoint OpenSharded(string folder, ModelConfig config, string indexPath)
    {
        var index = ShardIndex.Read(indexPath, folder);
        foreach (string shard in index.Shards)
        {
            string path = Path.Combine(folder, shard);
            if (!File.Exists(path))
            {
                string tensor = index.WeightMap.First(e => e.Value == shard).Key;
                throw new CheckpointException($"{indexPath}: shard '{shard}' (holding tensor '{tensor}' and others) does not exist: {path}", path, tensor);
            }
        }
        var files = new List<SafetensorsFile>();
        try
        {
            var byName = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (string shard in index.Shards)
            {
                var file = SafetensorsFile.Open(Path.Combine(folder, shard));
                files.Add(file);
                byName.Add(shard, file);
            }
            var tensors = new Dictionary<string, TensorInfo>(index.WeightMap.Count, StringComparer.Ordinal);
            foreach (var (name, shard) in index.WeightMap)
            {
                var file = byName[shard];
                if (!file.Tensors.TryGetValue(name, out var tensor))
                    throw new CheckpointException($"{indexPath}: maps tensor '{name}' to shard '{shard}', but {file.Path} has no tensor '{name}'", file.Path, name);
                tensors.Add(name, tensor);
            }
            var checkpoint = new Checkpoint(folder, config, indexPath, files.ToArray(), tensors);
            files.Clear();
            return checkpoint;
        }
        finally
        {
            foreach (var file in files)
                file.Dispose();
        }
    }

    /// <summary>Full path of the model folder (no trailing separator).</summary>
    public string Folder { get; }

    /// <summary>The folder's config.json.</summary>
    public ModelConfig Config { get; }

    /// <summary>Full path of model.safetensors.index.json for a sharded checkpoint; null otherwise.</summary>
    public string? IndexPath { get; }

    /// <summary>The safetensors files the weights come from (one, or every shard the index names).</summary>
    public IReadOnlyList<SafetensorsFile> Files => _files;

    /// <summary>Every tensor, ordered by name.</summary>
    public IReadOnlyList<TensorInfo> Tensors { get; }

    /// <summary>Sum of every tensor's bytes.</summary>
    public long TotalBytes { get; }

    /// <summary>Bytes of the tensors of each dtype present (BF16, F8_E4M3, F32, ...).</summary>
    public IReadOnlyDictionary<SafetensorsDType, long> BytesByDType { get; }

    /// <summary>True when the checkpoint holds <paramref name="name"/>.</summary>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>Looks up a tensor by its Hugging Face name.</summary>
    public bool TryGetTensor(string name, out TensorInfo tensor)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _tensors.TryGetValue(name, out tensor!);
    }

    /// <summary>
    /// Instrumentation for tests: while set on the current thread's async flow, called with every name
    /// <see cref="GetTensor"/> looks up (the loader and <c>CheckpointConformance</c> look up each tensor they use
    /// through it), so a test can compare the tensors the two visit.
    /// </summary>
    internal static readonly AsyncLocal<Action<string>?> LookupObserver = new();

    /// <summary>The tensor called <paramref name="name"/>.</summary>
    /// <exception cref="CheckpointException">"tensor 'x' is not in checkpoint &lt;folder&gt;".</exception>
    public TensorInfo GetTensor(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        LookupObserver.Value?.Invoke(name);
        if (!_tensors.TryGetValue(name, out var tensor))
            throw new CheckpointException($"tensor '{name}' is not in checkpoint {Folder}", Folder, name);
        return tensor;
    }

    /// <summary>
    /// Checks that tensor <paramref name="name"/> exists and has shape <paramref name="shape"/>, the shape
    /// config.json implies: the model loader calls it for every weight before running, so that a config that
    /// contradicts the tensors is refused up front.
    /// </summary>
    /// <exception cref="CheckpointException">"&lt;folder&gt;: tensor 'name' has shape [a, b] but config.json implies [c, d]", or the tensor is missing.</exception>
    public TensorInfo ExpectShape(string name, params long[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var tensor = GetTensor(name);
        if (!tensor.HasShape(shape))
            throw new CheckpointException($"{Folder}: tensor '{name}' has shape {tensor.ShapeText} but {ConfigFileName} implies {TensorInfo.FormatShape(shape)}", tensor.File.Path, name);
        return tensor;
    }

    /// <summary>The bytes of <paramref name="tensor"/>, straight from the mapping of its file.</summary>
    public ReadOnlySpan<byte> GetBytes(TensorInfo tensor) => Owner(tensor).GetBytes(tensor);

    /// <summary>A byte range of <paramref name="tensor"/>'s data (for tensors of 2 GB or more).</summary>
    public ReadOnlySpan<byte> GetBytes(TensorInfo tensor, long start, int length) => Owner(tensor).GetBytes(tensor, start, length);

    /// <summary>Copies the tensor's elements as stored; see <see cref="SafetensorsFile.CopyTo{T}"/>.</summary>
    public void CopyTo<T>(TensorInfo tensor, Span<T> destination) where T : unmanaged => Owner(tensor).CopyTo(tensor, destination);

    /// <summary>The tensor as float32; see <see cref="SafetensorsFile.ReadAsFloat32(TensorInfo, Span{float})"/>.</summary>
    public void ReadAsFloat32(TensorInfo tensor, Span<float> destination) => Owner(tensor).ReadAsFloat32(tensor, destination);

    /// <summary>The tensor as int64; see <see cref="SafetensorsFile.ReadAsInt64(TensorInfo, Span{long})"/>.</summary>
    public void ReadAsInt64(TensorInfo tensor, Span<long> destination) => Owner(tensor).ReadAsInt64(tensor, destination);

    /// <summary>The tensor called <paramref name="name"/> as a new float32 array.</summary>
    public float[] ReadAsFloat32(string name) => GetTensor(name).File.ReadAsFloat32(name);

    /// <summary>The tensor called <paramref name="name"/> as a new int64 array.</summary>
    public long[] ReadAsInt64(string name) => GetTensor(name).File.ReadAsInt64(name);

    /// <summary>Unmaps every file.</summary>
    public void Dispose()
    {
        foreach (var file in _files)
            file.Dispose();
    }

    /// <summary>"folder (model_type, n tensors in m files)".</summary>
    public override string ToString() => $"{Folder} ({Config.ModelType}, {_tensors.Count} tensors in {_files.Length} file(s))";

    SafetensorsFile Owner(TensorInfo tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (!_tensors.TryGetValue(tensor.Name, out var own) || !ReferenceEquals(own, tensor))
            throw new ArgumentException($"tensor '{tensor.Name}' of {tensor.File.Path} is not from checkpoint {Folder}", nameof(tensor));
        return tensor.File;
    }
}
