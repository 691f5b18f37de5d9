using System.Runtime.InteropServices;

namespace Diffusion.Util;

/// <summary>
/// Keeps libtorch's freed CPU tensor memory in the process for reuse. libtorch allocates CPU tensors with the C
/// allocator and has no caching allocator on the CPU; glibc's malloc returns large blocks to the kernel on free (mmap
/// above its threshold, heap trimming below), so every new activation of a few MB is page-faulted and zeroed afresh.
/// Measured here (bench/precision.md): GroupNorm + SiLU forward and backward on a 64×32×28×28 activation took
/// 60–150 ms of CPU time, 3–4 ms with this setting — page faults, not arithmetic, were most of a training step.
/// <see cref="Tune"/> raises the mmap threshold to 1 GiB, stops heap trimming and pads heap growth (glibc's
/// <c>mallopt</c>; PyTorch's CPU performance guide gets the same effect from jemalloc or tcmalloc). Freed memory then
/// stays with the process: the resident set stays at its peak rather than falling between steps. Linux with glibc
/// only; elsewhere, or with <c>DIFFUSION_MALLOC_TUNING=0</c>, nothing is changed.
/// </summary>
public static class NativeAllocator
{
    private const int MTrimThreshold = -1, MTopPad = -2, MMmapThreshold = -3;
    private static int applied;

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int Mallopt(int param, int value);

    /// <summary>Whether the tuning is in effect in this process.</summary>
    public static bool Tuned { get; private set; }

    /// <summary>Applies the tuning once per process (later calls do nothing); returns whether it is in effect.</summary>
    public static bool Tune()
    {
        if (Interlocked.Exchange(ref applied, 1) == 1) return Tuned;
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("DIFFUSION_MALLOC_TUNING") == "0") return false;
        try
        {
            Tuned = Mallopt(MMmapThreshold, 1 << 30) == 1
                  & Mallopt(MTrimThreshold, int.MaxValue) == 1
                  & Mallopt(MTopPad, 64 << 20) == 1;
        }
        catch (DllNotFoundException) { Tuned = false; }        // not glibc (e.g. musl has no mallopt)
        catch (EntryPointNotFoundException) { Tuned = false; }
        return Tuned;
    }
}
