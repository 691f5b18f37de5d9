using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Diffusion.Training;

/// <summary>
/// One training process per run folder: <c>train.lock</c>, a small JSON file (process id, host name, start time)
/// created exclusively when a trainer starts and deleted when it ends. A second trainer on the same folder is refused
/// naming the holder; a lock left by a process that is gone (same host, no such process, or the process id now
/// belongs to another process) is taken over with a note.
/// </summary>
public sealed class RunLock : IDisposable
{
    public const string FileName = "train.lock";

    /// <summary>The lock file.</summary>
    public string Path { get; }
    private bool released;

    private RunLock(string path) => Path = path;

    /// <summary>
    /// What a lock file says about its holder. <paramref name="StartTicks"/> is the holder process's start time in clock
    /// ticks since boot (field 22 of /proc/PID/stat; null where there is no /proc, and in locks written before
    /// 2026-12-04): it names the process whatever the wall clock does.
    /// </summary>
    public sealed record Holder(int Pid, string Host, DateTime StartedUtc, long? StartTicks = null)
    {
        /// <summary>
        /// How much later than its lock a process may seem to have started and still be the lock's writer, for locks
        /// without <see cref="StartTicks"/>. A process's start time is computed from the boot time, which moves when the
        /// wall clock is stepped (a virtual machine resumed from suspension: 20–40 s seen here), so a tight bound
        /// declared a live worker's lock stale.
        /// </summary>
        public static readonly TimeSpan ClockSlack = TimeSpan.FromMinutes(10);

        public override string ToString() => $"process {Pid} on {Host}, since {StartedUtc:yyyy-MM-dd HH:mm:ss} UTC";

        /// <summary>
        /// True when the holder is on this host and its process is gone, or its id now belongs to another process:
        /// another start time since boot (<see cref="StartTicks"/>), or, without it, a start more than
        /// <see cref="ClockSlack"/> after the lock was written.
        /// </summary>
        public bool IsStale()
        {
            if (!string.Equals(Host, Environment.MachineName, StringComparison.OrdinalIgnoreCase)) return false;
            try
            {
                using var p = Process.GetProcessById(Pid);
                if (p.HasExited) return true;
                if (StartTicks is long ticks && ProcessStartTicks(Pid) is long now) return now != ticks;
                return p.StartTime.ToUniversalTime() > StartedUtc + ClockSlack;
            }
            catch (ArgumentException) { return true; }       // no such process
            catch (InvalidOperationException) { return true; }
            catch (System.ComponentModel.Win32Exception) { return false; }   // exists, but not ours to inspect
        }
    }

    /// <summary>
    /// Takes the lock of <paramref name="runDir"/>: refuses (one line naming the holder) when another live process holds
    /// it; takes over a stale one, saying so through <paramref name="onMessage"/>.
    /// </summary>
    public static RunLock Acquire(string runDir, Action<string>? onMessage)
    {
        string path = System.IO.Path.Combine(runDir, FileName);
        return Take(path, onMessage, out var live)
            ?? throw (live is not null ? Held(runDir, path, live)
                      : new UserError($"--out {runDir}: could not take the lock {path} (another train is starting there?); remove it if no train is running"));
    }

    /// <summary>
    /// Takes the lock file <paramref name="fileName"/> in <paramref name="dir"/> unless a live holder has it (another
    /// process, or another holder in this one): null then. A stale lock is taken over, saying so through
    /// <paramref name="onMessage"/>. <c>diffusion study</c> claims its jobs with it.
    /// </summary>
    public static RunLock? TryAcquire(string dir, string fileName, Action<string>? onMessage) =>
        Take(System.IO.Path.Combine(dir, fileName), onMessage, out _);

    // The lock at path, or null with the live holder that has it (null when none could be read in five looks: the
    // file kept vanishing or was still being written, as when several takers race).
    private static RunLock? Take(string path, Action<string>? onMessage, out Holder? live)
    {
        live = null;
        for (int attempt = 0; attempt < 5; attempt++)
        {
            if (TryCreate(path)) return new RunLock(path);
            var holder = Read(path);
            if (holder is null)
            {
                Thread.Sleep(100);   // deleted meanwhile, or being written: look again
                continue;
            }
            if (!holder.IsStale())
            {
                live = holder;
                return null;
            }
            if (TryTakeOver(path, holder, onMessage)) return new RunLock(path);
        }
        return null;
    }

    /// <summary>
    /// Refuses when a live process holds the lock of <paramref name="runDir"/>: before deleting the folder, or before a
    /// command says anything about a run it will not be able to start.
    /// </summary>
    public static void ThrowIfHeld(string runDir)
    {
        string path = System.IO.Path.Combine(runDir, FileName);
        if (Read(path) is Holder h && !h.IsStale()) throw Held(runDir, path, h);
    }

    private static UserError Held(string runDir, string path, Holder holder) =>
        new($"--out {runDir}: another train is running there ({holder}; lock {path}); wait for it to finish or choose another --out");

    /// <summary>The holder a lock file names, or null when there is no such file or it cannot be read yet.</summary>
    public static Holder? Read(string path)
    {
        try
        {
            var o = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            return new Holder(o["pid"]!.GetValue<int>(), o["host"]!.GetValue<string>(),
                              DateTime.Parse(o["started"]!.GetValue<string>(), CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal),
                              o["start_ticks"]?.GetValue<long>());
        }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
        catch (Exception e) when (e is JsonException or IOException or InvalidOperationException or NullReferenceException or FormatException)
        {
            // Created but not yet written, or written by something else: only a file old enough to be abandoned is stale.
            var age = DateTime.UtcNow - File.GetLastWriteTimeUtc(path);
            return age > TimeSpan.FromSeconds(10) ? new Holder(-1, Environment.MachineName, File.GetLastWriteTimeUtc(path)) : null;
        }
    }

    /// <summary>Writes a lock naming the given holder (tests use it to fake other processes).</summary>
    public static void Write(string path, Holder holder) => File.WriteAllText(path, Json(holder));

    /// <summary>
    /// Replaces the stale lock <paramref name="path"/> (whose holder was read as <paramref name="stale"/>) by this
    /// process's own, true when that worked. Several processes may find the same stale lock at the same instant: a
    /// check-then-delete lets one of them delete the fresh lock another has just written, and both then believe they
    /// hold it (seen with two study workers started together). So the look-again, delete and create happen while this
    /// process holds an exclusive OS lock on a sidecar file (<c>PATH.takeover</c>, left in place): .NET opens a file
    /// with <see cref="FileShare.None"/> under <c>flock(LOCK_EX)</c> on Unix and a share-mode lock on Windows, and the
    /// system drops it when the process dies, so a taker killed here blocks nobody.
    /// </summary>
    private static bool TryTakeOver(string path, Holder stale, Action<string>? onMessage)
    {
        using var guard = OpenExclusive(path + ".takeover", TimeSpan.FromSeconds(10));
        if (guard is null) return false;                 // another taker is still inside: the caller looks again
        if (Read(path) != stale) return false;           // taken over (or released) meanwhile
        onMessage?.Invoke($"note: took over the stale lock {path} of {stale} (that process is gone)");
        try { File.Delete(path); } catch (IOException) { return false; }
        return TryCreate(path);                          // false when a plain create got in first: it holds the lock
    }

    private static FileStream? OpenExclusive(string path, TimeSpan patience)
    {
        var until = DateTime.UtcNow + patience;
        while (true)
        {
            try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) when (DateTime.UtcNow < until) { Thread.Sleep(10); }
            catch (IOException) { return null; }
        }
    }

    private static bool TryCreate(string path)
    {
        try
        {
            using var fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
            var bytes = System.Text.Encoding.UTF8.GetBytes(Json(Self()));
            fs.Write(bytes);
            fs.Flush(flushToDisk: true);
            return true;
        }
        // The file existed (EEXIST is 17 on Unix, ERROR_FILE_EXISTS 80 on Windows) — even if its holder has deleted it
        // since, as happens when several takers race: the caller looks again.
        catch (IOException e) when (File.Exists(path) || (e.HResult & 0xFFFF) is 17 or 80 or 183) { return false; }
    }

    private static string Json(Holder h)
    {
        var o = new JsonObject
        {
            ["pid"] = h.Pid, ["host"] = h.Host, ["started"] = h.StartedUtc.ToUniversalTime().ToString("o", CultureInfo.InvariantCulture),
        };
        if (h.StartTicks is long t) o["start_ticks"] = t;
        return o.ToJsonString() + "\n";
    }

    /// <summary>This process as a lock holder.</summary>
    public static Holder Self() =>
        new(Environment.ProcessId, Environment.MachineName, DateTime.UtcNow, ProcessStartTicks(Environment.ProcessId));

    /// <summary>
    /// The start time of process <paramref name="pid"/> in clock ticks since boot (field 22 of /proc/PID/stat), or null
    /// where there is no /proc or no such process. Unlike a start time in wall-clock terms it does not move when the
    /// clock is set, and a process that reuses the id has another.
    /// </summary>
    public static long? ProcessStartTicks(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            // "pid (comm) state ppid …": comm may hold spaces and parentheses, so count fields after its last ')'.
            var fields = stat[(stat.LastIndexOf(')') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return fields.Length > 19 && long.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out long t) ? t : null;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>Deletes the lock (once).</summary>
    public void Dispose()
    {
        if (released) return;
        released = true;
        try { File.Delete(Path); } catch (IOException) { /* the folder went away */ }
    }
}
