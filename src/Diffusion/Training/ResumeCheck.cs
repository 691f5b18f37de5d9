using System.Text.Json;
using System.Text.Json.Nodes;
using Diffusion.Config;

namespace Diffusion.Training;

/// <summary>
/// A resumed run keeps its saved config: the flags of a new run (<c>--config</c>, <c>--remedy</c>, <c>--set</c>,
/// <c>--data</c>, <c>--seed</c>) may be repeated with <c>--resume</c> as long as they leave it unchanged. The config
/// the flags give is built as <see cref="TrainingRun.NewConfig"/> builds it and compared, key by key, with the saved
/// one — only on the keys the flags set (every key of the <c>--config</c> file, the remedy presets' keys, the
/// <c>--set</c> keys, <c>data.spec</c>, <c>train.seed</c>), since without <c>--config</c> the flags start from a
/// built-in default; <c>train.steps</c>, <c>data.data-dir</c> and <c>train.threads</c> may change.
/// </summary>
public static class ResumeCheck
{
    /// <summary>The keys a resumed run may change.</summary>
    public static readonly IReadOnlyList<string> MayChange = ["train.steps", "data.data-dir", "train.threads"];

    /// <summary>Refuses, naming the flag, the key, the saved value and the given one, a request that would change <paramref name="saved"/>.</summary>
    public static void Unchanged(TrainRequest r, JsonObject saved, string savedOrigin)
    {
        // Each key the flags set, with the flag that set it last (in the order NewConfig applies them).
        var setBy = new Dictionary<string, (string Flag, bool ShowsValue)>();
        JsonObject given;
        if (r.Config is string configArg)
        {
            given = TrainingRun.ConfigTree(configArg);
            foreach (var key in Leaves(given, "")) setBy[key] = ($"--config {configArg}", false);
        }
        else given = (JsonObject)saved.DeepClone();
        foreach (var list in r.Remedies)
            foreach (var set in Remedies.Presets(list))
            {
                ConfigLoader.ApplySet(given, set);
                setBy[KeyOf(set)] = ($"--remedy {list}", false);
            }
        foreach (var set in r.Sets)
        {
            ConfigLoader.ApplySet(given, set);
            setBy[KeyOf(set)] = ($"--set {set}", true);
        }
        if (r.Data is string data)
        {
            ConfigLoader.ApplySet(given, "data.spec=" + JsonSerializer.Serialize(data));
            setBy["data.spec"] = ($"--data {data}", true);
        }
        if (r.Seed is long seed)
        {
            ConfigLoader.ApplySet(given, $"train.seed={seed}");
            setBy["train.seed"] = ($"--seed {seed}", true);
        }
        if (setBy.Count == 0) return;

        // Both through the typed record, so that 1e-3 and 0.001, or a default left out and written out, compare equal.
        var flags = ConfigLoader.ToTree(ConfigLoader.FromTree(given, "--resume: the given flags"));
        var kept = ConfigLoader.ToTree(ConfigLoader.FromTree((JsonObject)saved.DeepClone(), savedOrigin));
        foreach (var (key, (flag, showsValue)) in setBy)
        {
            if (MayChange.Contains(key)) continue;
            var a = Find(flags, key);
            var b = Find(kept, key);
            if (JsonNode.DeepEquals(a, b)) continue;
            string source = showsValue ? flag : $"{flag} ({key} = {Show(a)})";
            throw new UserError($"--resume: {source} differs from the saved {key} {Show(b)}; a resumed run keeps its config (only --steps, --threads and --data-dir may change)");
        }
    }

    /// <summary>The key of a <c>key=value</c> assignment.</summary>
    internal static string KeyOf(string assignment) => assignment[..Math.Max(0, assignment.IndexOf('='))].Trim();

    // Dotted paths of every non-object value in a tree (arrays are values).
    private static IEnumerable<string> Leaves(JsonObject o, string prefix)
    {
        foreach (var (k, v) in o)
        {
            string path = prefix.Length == 0 ? k : $"{prefix}.{k}";
            if (v is JsonObject child) foreach (var p in Leaves(child, path)) yield return p;
            else yield return path;
        }
    }

    private static JsonNode? Find(JsonObject tree, string dotted)
    {
        JsonNode? cur = tree;
        foreach (var part in dotted.Split('.'))
        {
            if (cur is not JsonObject o || !o.TryGetPropertyValue(part, out cur)) return null;
        }
        return cur;
    }

    private static string Show(JsonNode? n) =>
        n is null ? "(unset)" : n is JsonValue v && v.TryGetValue<string>(out var s) ? s : n.ToJsonString();
}
