using System.Text.Json;
using System.Text.Json.Nodes;

namespace Diffusion.Study;

/// <summary>
/// The files of a study in its output folder DIR:
/// <c>results/&lt;job&gt;.json</c> (one per finished job: the only input of the report),
/// <c>reference.npz</c> (the reference's features, computed once), <c>features.json</c> (the identity of the features
/// every result was scored in, checked by each later worker, and the real-versus-real floor), and per job <c>work/&lt;job&gt;/</c> holding
/// <c>job.lock</c> (the worker that claimed it, a <see cref="Training.RunLock"/>), <c>progress.json</c> (what the
/// worker is doing), <c>run/</c> (the training run folder, resumable), <c>checkpoints/step-NNNNNNN.ckpt</c> (a copy of the
/// checkpoint at each evaluation step), <c>train.json</c> (the finished training's measurements) and
/// <c>evals/&lt;key&gt;.json</c> (each finished evaluation), <c>diagnostics/&lt;name&gt;.json</c> (each finished diagnostic), and <c>failed.json</c> when the job failed.
/// </summary>
public sealed class StudyFolder(string dir)
{
    public const string LockFile = "job.lock";

    public string Dir { get; } = dir;
    public string ResultsDir => Path.Combine(Dir, "results");
    public string Result(StudyJob job) => Path.Combine(ResultsDir, job.Id + ".json");
    public string Work(StudyJob job) => Path.Combine(Dir, "work", job.Id);
    public string Run(StudyJob job) => Path.Combine(Work(job), "run");
    public string Checkpoint(StudyJob job, long step) => Path.Combine(Work(job), "checkpoints", $"step-{step:D7}.ckpt");
    public string TrainInfo(StudyJob job) => Path.Combine(Work(job), "train.json");
    public string Eval(StudyJob job, EvalTask task) => Path.Combine(Work(job), "evals", task.Key + ".json");
    public string Progress(StudyJob job) => Path.Combine(Work(job), "progress.json");
    /// <summary>A finished diagnostic of the job's final checkpoint (the plan's <c>[[diagnostics]]</c>).</summary>
    public string Diagnostic(StudyJob job, StudyDiagnostic d) => Path.Combine(Work(job), "diagnostics", d.Name + ".json");
    public string Lock(StudyJob job) => Path.Combine(Work(job), LockFile);
    /// <summary>Written when a job fails with a user error (e.g. its training diverged): workers skip it until it is deleted.</summary>
    public string Failed(StudyJob job) => Path.Combine(Work(job), "failed.json");

    /// <summary>Reads a JSON object file, or null when it is missing or unreadable (a torn write is treated as absent).</summary>
    public static JsonObject? Read(string path)
    {
        try { return JsonNode.Parse(File.ReadAllText(path)) as JsonObject; }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>Writes a JSON object atomically (indented).</summary>
    public static void Write(string path, JsonObject o) =>
        Util.AtomicFile.WriteAllText(path, o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

    /// <summary>The finished jobs' result files, read.</summary>
    public IReadOnlyList<JsonObject> Results() =>
        Directory.Exists(ResultsDir) ? Directory.GetFiles(ResultsDir, "*.json").Order(StringComparer.Ordinal).Select(Read).OfType<JsonObject>().ToList() : [];
}
