using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Tomlyn;
using Tomlyn.Model;

namespace Diffusion.Config;

/// <summary>
/// Reads a <see cref="RunConfig"/> from JSON or TOML, applies <c>--set key=value</c> overrides and
/// validates the result. Both formats go through one JSON tree, so unknown keys and wrong types are
/// reported the same way, naming the key.
/// </summary>
public static class ConfigLoader
{
    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.KebabCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Names of the ready-made configurations embedded in the library (the files under configs/).</summary>
    public static IReadOnlyList<string> EmbeddedNames =>
        typeof(ConfigLoader).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith("configs/", StringComparison.Ordinal))
            .Select(n => Path.GetFileNameWithoutExtension(n["configs/".Length..]))
            .OrderBy(n => n).ToList();

    /// <summary>The JSON tree of an embedded configuration (e.g. "toy", "image28", "demo").</summary>
    public static JsonObject EmbeddedTree(string name)
    {
        var asm = typeof(ConfigLoader).Assembly;
        var res = asm.GetManifestResourceNames().FirstOrDefault(n => n == $"configs/{name}.toml" || n == $"configs/{name}.json")
                  ?? throw new ConfigException($"no built-in config named '{name}': expected one of {string.Join(", ", EmbeddedNames)}");
        using var s = asm.GetManifestResourceStream(res)!;
        using var r = new StreamReader(s);
        return ParseTree(r.ReadToEnd(), res.EndsWith(".toml") ? "toml" : "json", $"built-in config {name}");
    }

    /// <summary>Reads a config file (.json or .toml) into a JSON tree.</summary>
    public static JsonObject FileTree(string path)
    {
        if (!File.Exists(path)) throw new ConfigException($"--config {path}: file not found");
        string ext = Path.GetExtension(path).ToLowerInvariant();
        string format = ext switch
        {
            ".toml" => "toml",
            ".json" => "json",
            _ => throw new ConfigException($"--config {path}: expected a .json or .toml file"),
        };
        return ParseTree(File.ReadAllText(path), format, path);
    }

    public static JsonObject ParseTree(string text, string format, string origin)
    {
        try
        {
            if (format == "json")
            {
                var node = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
                return node as JsonObject ?? throw new ConfigException($"{origin}: expected a JSON object at the top level");
            }
            var table = TomlSerializer.Deserialize<TomlTable>(text) ?? new TomlTable();
            return (JsonObject)TomlToJson(table)!;   // a table converts to an object
        }
        catch (JsonException e) { throw new ConfigException($"{origin}: not valid JSON ({OneLine(e.Message)})"); }
        catch (TomlException e) { throw new ConfigException($"{origin}: not valid TOML ({OneLine(e.Message)})"); }
    }

    /// <summary>Applies one <c>key=value</c> override: the key is a dotted path (model.channels), the value JSON (numbers, true/false, [lists], "strings") or a bare string.</summary>
    public static void ApplySet(JsonObject tree, string assignment)
    {
        int eq = assignment.IndexOf('=');
        if (eq <= 0) throw new ConfigException($"--set {assignment}: expected key=value, e.g. --set train.lr=2e-4");
        string key = assignment[..eq].Trim();
        string raw = assignment[(eq + 1)..].Trim();
        var parts = key.Split('.');
        if (parts.Any(string.IsNullOrWhiteSpace)) throw new ConfigException($"--set {assignment}: the key '{key}' has an empty part");
        JsonObject cur = tree;
        for (int i = 0; i < parts.Length - 1; i++)
        {
            if (cur[parts[i]] is JsonObject next) cur = next;
            else { var created = new JsonObject(); cur[parts[i]] = created; cur = created; }
        }
        JsonNode? value;
        try { value = JsonNode.Parse(raw); }
        catch (JsonException) { value = JsonValue.Create(raw); }
        cur[parts[^1]] = value;
    }

    /// <summary>Merges <paramref name="overlay"/> into <paramref name="baseTree"/> (objects recursively, everything else replaced).</summary>
    public static void Merge(JsonObject baseTree, JsonObject overlay)
    {
        foreach (var (k, v) in overlay.ToList())
        {
            if (v is JsonObject o && baseTree[k] is JsonObject b) Merge(b, o);
            else baseTree[k] = v?.DeepClone();
        }
    }

    /// <summary>Turns a JSON tree into a validated <see cref="RunConfig"/>; unknown keys and wrong types are errors naming the key.</summary>
    public static RunConfig FromTree(JsonObject tree, string origin = "config")
    {
        DropDerivedConditional(tree, origin);
        RunConfig cfg;
        try
        {
            cfg = tree.Deserialize<RunConfig>(JsonOptions) ?? new RunConfig();
        }
        catch (JsonException e)
        {
            string path = (e.Path ?? "$").TrimStart('$').TrimStart('.');
            string what = e.Message.Contains("could not be mapped", StringComparison.Ordinal) ? "unknown key" : "wrong type of value for key";
            if (what == "unknown key")
            {
                // System.Text.Json names the parent object in the path and the key in the message.
                int a = e.Message.IndexOf('\''), b = a >= 0 ? e.Message.IndexOf('\'', a + 1) : -1;
                if (a >= 0 && b > a)
                {
                    string key = e.Message[(a + 1)..b];
                    if (path != key && !path.EndsWith("." + key, StringComparison.Ordinal))
                        path = string.IsNullOrEmpty(path) ? key : $"{path}.{key}";
                }
            }
            throw new ConfigException($"{origin}: {what} '{path}'");
        }
        try { cfg.Validate(); }
        catch (ConfigException e) { throw new ConfigException($"{origin}: {e.Message}"); }
        return cfg;
    }

    // Configs and checkpoints written before 2026-12-04 hold model.conditional, a value derived from model.num-classes
    // that was serialized by mistake (and, set by hand, silently ignored). It is dropped when it agrees with
    // model.num-classes, so those files still load, and refused when it does not, naming the setting that decides.
    private static void DropDerivedConditional(JsonObject tree, string origin)
    {
        if (tree["model"] is not JsonObject model || !model.ContainsKey("conditional")) return;
        bool classes = model["num-classes"] is JsonValue n && n.GetValueKind() == JsonValueKind.Number && double.TryParse(n.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture, out double k) && k > 0;
        var kind = model["conditional"]?.GetValueKind();
        if ((kind == JsonValueKind.True && classes) || (kind == JsonValueKind.False && !classes))
        {
            model.Remove("conditional");
            return;
        }
        throw new ConfigException($"{origin}: model.conditional is not a setting; a model is class-conditional when model.num-classes is positive (got model.conditional = {model["conditional"]?.ToJsonString() ?? "null"} with model.num-classes = {model["num-classes"]?.ToJsonString() ?? "0"})");
    }

    public static string ToJson(RunConfig cfg) => JsonSerializer.Serialize(cfg, JsonOptions);

    public static RunConfig FromJson(string json, string origin) => FromTree(ParseTree(json, "json", origin), origin);

    public static JsonObject ToTree(RunConfig cfg) => (JsonObject)JsonSerializer.SerializeToNode(cfg, JsonOptions)!;

    private static JsonNode? TomlToJson(object? v) => v switch
    {
        null => null,
        TomlTable t => new JsonObject(t.Select(kv => KeyValuePair.Create(kv.Key, TomlToJson(kv.Value)))),
        TomlArray a => new JsonArray(a.Select(TomlToJson).ToArray()),
        TomlTableArray ta => new JsonArray(ta.Select(x => TomlToJson(x)).ToArray()),
        string s => JsonValue.Create(s),
        bool b => JsonValue.Create(b),
        long l => JsonValue.Create(l),
        int i => JsonValue.Create(i),
        double d => JsonValue.Create(d),
        float f => JsonValue.Create((double)f),
        _ => JsonValue.Create(v.ToString()),
    };

    private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();
}
