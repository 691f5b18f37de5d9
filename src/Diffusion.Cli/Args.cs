using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Diffusion.Cli;

/// <summary>
/// A command's parsed options. The parsing is System.CommandLine's (<see cref="CommandLine.Declare"/> declares each
/// command's options): <c>--name value</c>, <c>--name=value</c>, repeatable options and switches, with the library's
/// typo suggestions for an unknown option. What this class adds is the project's convention for mistakes: one line
/// naming the option, the same words as before the library (CliTests asserts them), and typed reads
/// (<see cref="Int"/>, <see cref="Double"/>) whose errors quote the value.
/// </summary>
public sealed class Args
{
    private readonly string command;
    private readonly Dictionary<string, List<string>> values = new();
    private readonly HashSet<string> switches = new();
    public List<string> Positionals { get; } = new();

    public Args(string command, IEnumerable<string> argv, IReadOnlyList<OptionSpec> options)
    {
        this.command = command;
        var list = argv.ToList();
        var switchOptions = options.Where(o => o.Kind != OptionKind.Value).SelectMany(o => o.ParserNames).ToHashSet();
        // A switch given a value (--quiet=1): the library would split it into a switch and a stray argument.
        foreach (var a in list)
            if (a.StartsWith("--", StringComparison.Ordinal) && a.IndexOf('=') is int eq and > 2 && switchOptions.Contains(a[2..eq]))
                throw new UsageError($"diffusion {command}: --{a[2..eq]} takes no value");

        var cmd = CommandLine.Declare(command, options);
        var parsed = cmd.Parse(list, CommandLine.ParserConfig);

        // "--" ends the options for the library (and is dropped); here, as before, it is an argument like any other.
        if (list.Contains("--")) Positionals.Add("--");
        // Tokens the declarations do not match: positionals, or an unknown option (named, with the library's suggestions).
        foreach (var t in parsed.UnmatchedTokens)
        {
            if (t.StartsWith("--", StringComparison.Ordinal) && t != "--")
            {
                string name = t[2..];
                int eq = name.IndexOf('=');
                if (eq >= 0) name = name[..eq];
                string hint = CommandLine.Suggestions(cmd, list);
                throw new UsageError($"diffusion {command}: unknown option --{name} (see diffusion {command} --help){hint}");
            }
            Positionals.Add(t);
        }
        foreach (var e in parsed.Errors)
        {
            if (e.SymbolResult is OptionResult o && o.Tokens.Count == 0 && !o.Implicit)
                throw new UsageError($"diffusion {command}: {o.Option.Name} needs a value");
            if (e.SymbolResult is ArgumentResult { Parent: OptionResult po } && po.Tokens.Count == 0)
                throw new UsageError($"diffusion {command}: {po.Option.Name} needs a value");
        }
        if (parsed.Errors.Count > 0)
            throw new UsageError($"diffusion {command}: {parsed.Errors[0].Message.ReplaceLineEndings(" ")} (see diffusion {command} --help)");

        foreach (var option in cmd.Options)
        {
            if (parsed.GetResult(option) is not OptionResult r || r.Implicit) continue;
            string name = option.Name[2..];
            if (option is Option<bool>) switches.Add(name);
            else values[name] = r.Tokens.Select(t => t.Value).ToList();
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
