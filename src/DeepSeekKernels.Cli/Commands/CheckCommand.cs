using System.CommandLine;
using System.Diagnostics;
using DeepSeekKernels.Bindings;
using DeepSeekKernels.Numerics;
using DeepSeekKernels.Runtime;
using Spectre.Console;

namespace DeepSeekKernels.Cli.Commands;

/// <summary>
/// `dsk check`: runs every backend present on this machine against the reference on a few shapes and dtypes,
/// and prints a table of errors and rough timings; then the support table: which op signatures each backend runs
/// itself (Ops.SupportMatrix), where "-" means a strict run fails and --allow-fallback runs the op on the reference.
/// </summary>
internal static class CheckCommand
{
    const float Eps = 1e-6f;

    public static Command Create()
    {
        var device = new Option<string>("--device")
        {
            Description = "Device for the ILGPU and native backends: auto (a CUDA GPU if present, else ILGPU's CPU accelerator), cuda or cpu.",
            DefaultValueFactory = _ => "auto",
        };
        device.AcceptOnlyFromAmong("auto", "cuda", "cpu");
        var command = new Command("check", "Check every backend present against the reference and print a table.") { device };
        command.SetAction(parse => Run(parse.GetValue(device)!));
        return command;
    }

    sealed record Row(string Op, string Types, string Shape, string Backend, string Error, string Micros, bool Ok);

    static int Run(string device)
    {
        var runtime = CommonOptions.CreateRuntime(device);
        using (runtime)
        {
            PrintEnvironment(runtime);
            var backends = new List<(string Label, Ops Ops)>
            {
                (runtime.IsCuda ? "ilgpu-cuda" : "ilgpu-cpu", Ops.Create(runtime, Backend.Ilgpu)),
            };
            if (runtime.IsNativeAvailable(out string reason))
                backends.Add(("native", Ops.Create(runtime, Backend.Native)));
            else
                AnsiConsole.MarkupLineInterpolated($"[yellow]native backend skipped:[/] {reason}");

            (int Rows, int Cols)[] shapes = runtime.IsCuda
                ? [(1, 7168), (7, 4099), (64, 7168), (4096, 4096)]
                : [(1, 7), (4, 4096 + 3), (2, 7168)];
            var rows = new List<Row>();
            foreach (var (r, c) in shapes)
                foreach (var (label, ops) in backends)
                {
                    rows.Add(CheckRmsNorm<float, float>(ops, label, r, c, fused: false));
                    rows.Add(CheckRmsNorm<BFloat16, BFloat16>(ops, label, r, c, fused: false));
                    rows.Add(CheckRmsNorm<BFloat16, float>(ops, label, r, c, fused: true));
                    rows.Add(CheckRmsNorm<BFloat16, BFloat16>(ops, label, r, c, fused: true));
                }

            var table = new Table().Border(TableBorder.Rounded)
                .AddColumns("op", "x/w", "rows x cols", "backend", "max error", "µs/call", "result");
            foreach (var row in rows)
                table.AddRow(row.Op, row.Types, row.Shape, row.Backend, row.Error, row.Micros, row.Ok ? "[green]ok[/]" : "[red]MISMATCH[/]");
            AnsiConsole.Write(table);
            int failed = rows.Count(r => !r.Ok);
            AnsiConsole.MarkupLine(failed == 0
                ? $"[green]{rows.Count} checks passed[/] against the reference (f32: relative error <= 2e-5; bf16: <= 1 ulp). µs/call is a rough wall-clock figure; bench/ measures."
                : $"[red]{failed} of {rows.Count} checks failed[/]");
            PrintSupportTable(backends.Select(b => b.Ops));
            return failed == 0 ? 0 : 1;
        }
    }

    /// <summary>
    /// Which op signatures each backend runs itself (Ops.SupportMatrix, from each backend's Supports): "yes", or "-"
    /// where a strict run fails and --allow-fallback runs it on the reference.
    /// </summary>
    static void PrintSupportTable(IEnumerable<Ops> gpuBackends)
    {
        var matrix = Ops.SupportMatrix([Ops.Reference, .. gpuBackends]);
        var table = new Table().Border(TableBorder.Rounded).AddColumn("op signature");
        foreach (var label in matrix.Labels)
            table.AddColumn(new TableColumn(label).Centered());
        for (int r = 0; r < matrix.Signatures.Count; r++)
        {
            var cells = new List<string> { Markup.Escape(matrix.Signatures[r].ToString()) };
            for (int c = 0; c < matrix.Backends.Count; c++)
                cells.Add(matrix[r, c] ? "[green]yes[/]" : "-");
            table.AddRow(cells.ToArray());
        }
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine("[bold]support:[/] what each backend runs itself; \"-\" fails under a strict backend and runs on the reference with --allow-fallback (Ops.WithReferenceFallback()).");
    }

    static void PrintEnvironment(DeviceRuntime runtime)
    {
        AnsiConsole.MarkupLineInterpolated($"[bold]device:[/] {runtime.DeviceName} ({(runtime.IsCuda ? "CUDA" : "ILGPU CPU accelerator, no CUDA GPU found")})");
        if (DskNative.TryLoad(out string reason))
            AnsiConsole.MarkupLineInterpolated($"[bold]native kernels:[/] {DskNative.LoadedFrom} (built with CUDA runtime {DskNative.CudaRuntimeVersion})");
        else
            AnsiConsole.MarkupLineInterpolated($"[bold]native kernels:[/] not loaded: {reason.Split(Environment.NewLine)[0]}");
        if (runtime.IsCuda)
        {
            try
            {
                foreach (var gpu in Nvml.ReadAll())
                    AnsiConsole.MarkupLineInterpolated($"[bold]gpu {gpu.Index}:[/] {gpu.Name}, {gpu.MemoryUsed / (1 << 20)} of {gpu.MemoryTotal / (1 << 20)} MiB in use, {gpu.GpuUtilizationPercent}% busy");
            }
            catch (Exception e) when (e is DllNotFoundException or InvalidOperationException)
            {
                AnsiConsole.MarkupLineInterpolated($"[yellow]NVML:[/] {e.Message.Split(Environment.NewLine)[0]}");
            }
        }
    }

    static Row CheckRmsNorm<T, TW>(Ops ops, string label, int rows, int cols, bool fused) where T : unmanaged where TW : unmanaged
    {
        var runtime = ops.Runtime!;
        var random = new Random(rows * 31 + cols);
        var x = Values<T>(rows * cols, random, 3f);
        var residual = Values<T>(rows * cols, random, 3f);
        var w = Values<TW>(cols, random, 1.5f);
        var expectedY = new T[x.Length];
        var expectedR = new T[x.Length];
        if (fused)
            Ops.Reference.AddRmsNorm<T, TW>(x, residual, w, expectedR, expectedY, cols, Eps);
        else
            Ops.Reference.RmsNorm<T, TW>(x, w, expectedY, cols, Eps);

        using var dx = runtime.Upload<T>(x);
        using var dres = runtime.Upload<T>(residual);
        using var dw = runtime.Upload<TW>(w);
        using var dy = runtime.Allocate<T>(x.Length);
        using var dr = runtime.Allocate<T>(x.Length);
        void Call()
        {
            if (fused) ops.AddRmsNorm(dx.View, dres.View, dw.View, dr.View, dy.View, cols, Eps);
            else ops.RmsNorm(dx.View, dw.View, dy.View, cols, Eps);
        }
        Call(); // warm-up: compiles the ILGPU kernel
        runtime.Synchronize();
        int calls = runtime.IsCuda ? 50 : 3;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < calls; i++)
            Call();
        runtime.Synchronize();
        double micros = clock.Elapsed.TotalMicroseconds / calls;

        var (error, ok) = Measure(expectedY, dy.ToArray());
        if (fused)
        {
            var (rError, rOk) = Measure(expectedR, dr.ToArray());
            ok &= rOk;
            error += $"; r {rError}";
        }
        return new Row(fused ? "add+rmsnorm" : "rmsnorm", $"{ElementTypes.Of<T>().Name()}/{ElementTypes.Of<TW>().Name()}",
            $"{rows} x {cols}", label, error, micros.ToString("F1"), ok);
    }

    /// <summary>bf16: the largest distance in ulps (ok when at most 1); f32: the largest relative error (ok below 2e-5).</summary>
    static (string Error, bool Ok) Measure<T>(T[] expected, T[] actual) where T : unmanaged
    {
        if (expected is BFloat16[] e && actual is BFloat16[] a)
        {
            int worst = 0;
            for (int i = 0; i < e.Length; i++)
                worst = Math.Max(worst, e[i].IsNaN != a[i].IsNaN ? int.MaxValue : BFloat16.UlpDistance(e[i], a[i]));
            return ($"{worst} ulp", worst <= 1);
        }
        var ef = (float[])(object)expected;
        var af = (float[])(object)actual;
        double rel = 0;
        for (int i = 0; i < ef.Length; i++)
            rel = Math.Max(rel, float.IsNaN(af[i]) ? double.PositiveInfinity : Math.Abs(ef[i] - af[i]) / (Math.Abs(ef[i]) + 1e-6));
        return ($"{rel:E1} rel", rel <= 2e-5);
    }

    static T[] Values<T>(int length, Random random, float scale) where T : unmanaged
    {
        var values = new float[length];
        for (int i = 0; i < length; i++)
            values[i] = (random.NextSingle() * 2 - 1) * scale + (scale < 2 ? 1f : 0f);
        if (typeof(T) == typeof(float))
            return (T[])(object)values;
        var bf = new BFloat16[length];
        BFloat16Conversions.FromSingle(values, bf);
        return (T[])(object)bf;
    }
}
