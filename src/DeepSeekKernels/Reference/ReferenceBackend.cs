using DeepSeekKernels.Runtime;

namespace DeepSeekKernels.Reference;

/// <summary>
/// The reference implementations behind the op API. Host spans are used as they are; device views are
/// used in place on ILGPU's CPU accelerator (its buffers are host memory) and staged through host arrays
/// on a GPU, so the reference can stand in for any op a GPU backend lacks.
/// </summary>
internal sealed class ReferenceBackend : KernelBackend
{
    public static readonly ReferenceBackend Instance = new();

    public override Backend Kind => Backend.Reference;

    public override void RmsNorm<T, TW>(DeviceView<T> x, DeviceView<T> residual, DeviceView<TW> w, DeviceView<T> y,
        DeviceView<T> r, int rows, int cols, float eps)
    {
        var runtime = x.Runtime;
        runtime.Synchronize();
        var hx = HostView.Of(x);
        var hw = HostView.Of(w);
        var hy = HostView.Of(y);
        if (residual.IsNull)
        {
            RmsNormReference.RmsNorm<T, TW>(hx.Span, hw.Span, hy.Span, cols, eps);
            hy.WriteBack();
            return;
        }
        var hres = HostView.Of(residual);
        var hr = HostView.Of(r);
        RmsNormReference.AddRmsNorm<T, TW>(hx.Span, hres.Span, hw.Span, hr.Span, hy.Span, cols, eps);
        hr.WriteBack();
        hy.WriteBack();
    }

    /// <summary>A host span over a device view: the view's own memory on the CPU accelerator, else a copy.</summary>
    sealed class HostView<T> where T : unmanaged
    {
        readonly DeviceView<T> _view;
        readonly T[]? _copy;

        public HostView(DeviceView<T> view)
        {
            if (view.Length > int.MaxValue)
                throw new NotSupportedException($"The reference backend handles views of at most {int.MaxValue} elements (got {view.Length}).");
            _view = view;
            _copy = view.Runtime.IsCuda ? view.ToArray() : null;
        }

        public unsafe Span<T> Span => _copy ?? new Span<T>((void*)_view.Pointer, (int)_view.Length);

        /// <summary>Copies an output back to the device (a no-op when the span is the view's own memory).</summary>
        public void WriteBack()
        {
            if (_copy != null)
                _view.CopyFromHost(_copy);
        }
    }

    static class HostView
    {
        public static HostView<T> Of<T>(DeviceView<T> view) where T : unmanaged => new(view);
    }
}
