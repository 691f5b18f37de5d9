using Spectre.Console;

namespace Diffusion.Cli;

/// <summary>
/// One task of Spectre.Console's live progress display on stderr. Spectre's display runs the work inside its
/// <c>Start</c> callback; the commands report progress from callbacks deep in the library instead, so the display runs
/// on its own thread, holding one task that <see cref="Update"/> moves, until <see cref="Stop"/>.
/// (Separate from <see cref="ProgressBar"/> so that Spectre.Console is loaded only when a terminal shows progress.)
/// </summary>
internal sealed class LiveProgress : ILiveProgress
{
    private static readonly List<LiveProgress> Active = new();

    // Ctrl-C: end the display (Spectre hides the cursor while it draws and shows it again when it ends).
    static LiveProgress() => Console.CancelKeyPress += (_, _) => StopAll();
    private readonly ManualResetEventSlim ready = new(), finished = new();
    private readonly Thread thread;
    private ProgressTask? task;

    public LiveProgress(string label)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        var progress = console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn { Width = 24 }, new PercentageColumn(), new RemainingTimeColumn());
        thread = new Thread(() =>
        {
            try
            {
                progress.Start(ctx =>
                {
                    task = ctx.AddTask(Markup.Escape(label), maxValue: 1);
                    ready.Set();
                    finished.Wait();
                    ctx.Refresh();
                });
            }
            finally { ready.Set(); }
        }) { IsBackground = true, Name = "progress" };
        lock (Active) Active.Add(this);
        thread.Start();
        ready.Wait();
    }

    public void Update(long done, long total, string description)
    {
        if (task is null) return;
        task.MaxValue = total;
        task.Value = Math.Min(done, total);
        task.Description = Markup.Escape(description);
    }

    public void Stop()
    {
        if (finished.IsSet) return;
        finished.Set();
        thread.Join();
        lock (Active) Active.Remove(this);
    }

    public static void StopAll()
    {
        LiveProgress[] all;
        lock (Active) all = Active.ToArray();
        foreach (var p in all) p.Stop();
    }
}
