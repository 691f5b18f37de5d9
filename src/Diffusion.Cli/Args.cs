using System.Globalization;

namespace Diffusion.Cli;

/// <summary>
/// A small, strict option parser: <c>--name value</c>, <c>--name=value</c>, repeatable options and
/// boolean switches. Anything it was not told about is an error naming the option.
/// </summary>
public sealed class Args
{
    private readonly string command;
    private readonly Dictionary<string, List<string>> values = new();
    private readonly HashSet<string> switches = new();
    public List<string> Positionals { get; } = new();

    public Args(string command, IEnumerable<string> argv, IReadOnlyCollection<string> valueOptions, IReadOnlyCollection<string> switchOptions)
    {
        this.command = command;
        var list = argv.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            string a = list[i];
            if (!a.StartsWith("--", StringComparison.Ordinal) || a == "--")
            {
                Positionals.Add(a);
                continue;
            }
            string name = a[2..];
            string? inline = null;
            int eq = name.IndexOf('=');
            if (eq >= 0) { inline = name[(eq + 1)..]; name = name[..eq]; }
            if (switchOptions.Contains(name))
            {
                if (inline is not null) throw new UsageError($"diffusion {command}: --{name} takes no value");
                switches.Add(name);
            }
            else if (valueOptions.Contains(name))
            {
                string v = inline ?? (i + 1 < list.Count ? list[++i] : throw new UsageError($"diffusion {command}: --{name} needs a value"));
                if (!values.TryGetValue(name, out var l)) values[name] = l = new List<string>();
                l.Add(v);
            }
            else throw new UsageError($"diffusion {command}: unknown option --{name} (see diffusion {command} --help)");
        }
    }

    public bool Has(string name) => values.ContainsKey(name) || switches.Contains(name);
    public bool Switch(string name) => switches.Contains(name);
    public IReadOnlyList<string> All(string name) => values.TryGetValue(name, out var l) ? l : [];

    public string? Get(string name)
    {
        if (!values.TryGetValue(name, out var l)) return null;
        if (l.Count > 1) throw new UsageError($"diffusion {command}: --{name} given {l.Count} times; give it once");
        return l[0];
    }

    public string Require(string name, string what) => Get(name) ?? throw new UsageError($"diffusion {command}: --{name} {what} is required");

    public int? Int(string name, int min = int.MinValue)
    {
        var s = Get(name);
        if (s is null) return null;
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v)) throw new UsageError($"diffusion {command}: --{name} expects an integer, got '{s}'");
        if (v < min) throw new UsageError($"diffusion {command}: --{name} must be at least {min}, got {v}");
        return v;
    }

    public long? Long(string name)
    {
        var s = Get(name);
        if (s is null) return null;
        if (!long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v)) throw new UsageError($"diffusion {command}: --{name} expects an integer, got '{s}'");
        return v;
    }

    public double? Double(string name)
    {
        var s = Get(name);
        if (s is null) return null;
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v)) throw new UsageError($"diffusion {command}: --{name} expects a number, got '{s}'");
        return v;
    }

    public void NoPositionals()
    {
        if (Positionals.Count > 0) throw new UsageError($"diffusion {command}: unexpected argument '{Positionals[0]}' (see diffusion {command} --help)");
    }
}

/// <summary>A command-line usage mistake: printed as one line, exit code 2.</summary>
public sealed class UsageError(string message) : Exception(message);
