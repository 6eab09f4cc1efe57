using System.Diagnostics;
using DeepSeekKernels;
using DeepSeekKernels.Models;
using DeepSeekKernels.Runtime;
string folder = args[0];
int steps = int.Parse(args[1]);
using var rt = DeviceRuntime.Create(DevicePreference.Cpu);
using var model = ModelLoader.Load(folder, Ops.Create(rt, Backend.Reference), 256, contextLength: 200 + steps + 1);
var prompt = Enumerable.Range(0, 200).Select(i => 5 + (i * 37) % Math.Min(1500, model.Shape.Vocab - 5)).ToArray();
int vocab = model.Shape.Vocab;
var logits = new float[vocab];
double best = double.MaxValue, bestPrefill = double.MaxValue;
for (int rep = 0; rep < 3; rep++)
{
    using var cache = model.CreateCache(200 + steps + 1);
    var clock = Stopwatch.StartNew();
    model.Forward(prompt, cache, logits);
    bestPrefill = Math.Min(bestPrefill, clock.Elapsed.TotalMilliseconds);
    clock.Restart();
    for (int i = 0; i < steps; i++)
    {
        int next = 0;
        for (int j = 1; j < vocab; j++) if (logits[j] > logits[next]) next = j;
        model.Forward([next], cache, logits);
    }
    best = Math.Min(best, clock.Elapsed.TotalMilliseconds / steps);
}
Console.WriteLine($"prefill 200: {bestPrefill:F1} ms ({200 / bestPrefill * 1000:F0} tok/s); decode: {best * 1000:F0} us/step ({1000 / best:F0} tok/s)");
