namespace DeepSeekKernels.Tests.Support;

/// <summary>RMSNorm in float64, as the textbook writes it: the oracle the reference is checked against.</summary>
public static class Float64RmsNorm
{
    /// <summary>y = v / sqrt(mean(v^2) + eps) * w per row, in double.</summary>
    public static double[] Compute(float[] v, float[] w, int cols, float eps)
    {
        var y = new double[v.Length];
        for (int row = 0; row < v.Length / cols; row++)
        {
            double sum = 0;
            for (int c = 0; c < cols; c++)
                sum += (double)v[row * cols + c] * v[row * cols + c];
            double inv = 1.0 / Math.Sqrt(sum / cols + eps);
            for (int c = 0; c < cols; c++)
                y[row * cols + c] = v[row * cols + c] * inv * w[c];
        }
        return y;
    }
}
