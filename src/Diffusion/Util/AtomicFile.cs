namespace Diffusion.Util;

/// <summary>
/// Writes a file so that readers see either the old complete file or the new complete file, never a
/// partial one: write to a temporary file beside it, flush to disk, then rename over the target.
/// </summary>
public static class AtomicFile
{
    /// <summary>
    /// Writes <paramref name="path"/> atomically; with <paramref name="keepPreviousAs"/>, an existing file at
    /// <paramref name="path"/> is kept under that name (replacing any file there) as part of the swap
    /// (<see cref="File.Replace(string, string, string?)"/>: the old file is linked to the backup name, then the new
    /// one renamed over it), so <paramref name="path"/> always names a complete file.
    /// </summary>
    public static void Write(string path, Action<Stream> write, string? keepPreviousAs = null)
    {
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        string tmp = $"{full}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            if (keepPreviousAs is not null && File.Exists(full)) File.Replace(tmp, full, Path.GetFullPath(keepPreviousAs));
            else File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch { /* best effort */ }
            throw;
        }
    }

    public static void WriteAllText(string path, string text) =>
        Write(path, s => { var b = System.Text.Encoding.UTF8.GetBytes(text); s.Write(b, 0, b.Length); });
}
