using System.CommandLine;
using System.CommandLine.Completions;
using System.CommandLine.Invocation;

namespace Diffusion.Cli;

/// <summary>
/// The command tree on System.CommandLine: every command's options declared once (<see cref="OptionSpec"/>: value
/// options repeatable, one token per occurrence; switches take no value; each with its help text, from which the
/// command's --help is rendered), parsed by the library, which also gives the typo suggestions and the
/// shell completions (<c>diffusion [suggest:POS] "diffusion sa"</c>, or <c>diffusion completion bash</c> for a script).
/// </summary>
public static class CommandLine
{
    /// <summary>No response files (@FILE stays a plain argument, as before the library).</summary>
    public static readonly ParserConfiguration ParserConfig = new() { ResponseFileTokenReplacer = null };

    /// <summary>One command: its name, its one-line summary (the root help's list), its help page (which holds the
    /// option declarations the parser reads too) and what runs it.</summary>
    public sealed record CliCommand(string Name, string Summary, Func<HelpPage> Help, Func<string[], int> Run)
    {
        public IReadOnlyList<OptionSpec> Options => Help().Options;
    }

    /// <summary>The commands, in the order the root help lists them.</summary>
    public static IReadOnlyList<CliCommand> Commands { get; } =
    [
        new("train", "train a model on toy, image or array data; writes a run folder", () => TrainCommand.Help, TrainCommand.Run),
        new("sample", "draw samples from a checkpoint or from an exact Gaussian-mixture model", () => SampleCommand.Help, SampleCommand.Run),
        new("merge", "join the parts of a sharded sampling run (sample --shard k/S) in index order", () => MergeCommand.Help, MergeCommand.Run),
        new("eval", "score samples against reference data: FID, KID, precision/recall, MMD", () => EvalCommand.Help, EvalCommand.Run),
        new("diagnose", "measure exposure bias, x0 bias, Lipschitz in t, error propagation, mixture steps", () => DiagnoseCommand.Help, DiagnoseCommand.Run),
        new("export", "write a run's EMA weights as safetensors (with its config) for PyTorch tools", () => ExportCommand.Help, ExportCommand.Run),
        new("bench", "training and sampling throughput of the reference UNet configs", () => BenchCommand.Help, BenchCommand.Run),
        new("study", "run a study plan (variants × seeds × samplers at equal budget), its status, its report", () => StudyCommand.Help, StudyCommand.Run),
    ];

    public const string RootDescription = "diffusion — train, sample and benchmark denoising diffusion models (TorchSharp, CPU)";

    /// <summary>The root help (<c>diffusion --help</c>, or no arguments): the command list from <see cref="Commands"/>.</summary>
    public static string Usage()
    {
        int width = Commands.Max(c => c.Name.Length) + 1;
        return $"""
            {RootDescription}

            usage: diffusion <command> [options]      (diffusion <command> --help for its options)

            {string.Join("\n", Commands.Select(c => "  " + c.Name.PadRight(width) + c.Summary))}

            Shell completion: source <(diffusion completion bash). A mistyped option or command gets a suggestion.
            """;
    }

    /// <summary>The command names as a list for messages: "train, sample, … or bench".</summary>
    public static string CommandList => string.Join(", ", Commands.SkipLast(1).Select(c => c.Name)) + " or " + Commands[^1].Name;

    /// <summary>One command's parser: each value option repeatable with one token per occurrence, each switch valueless;
    /// descriptions, value names and completion values from the declarations.</summary>
    public static Command Declare(string name, IEnumerable<OptionSpec> options)
    {
        var summary = Commands.FirstOrDefault(c => c.Name == name)?.Summary ?? name;
        var cmd = new Command(name, summary) { TreatUnmatchedTokensAsErrors = false };
        foreach (var spec in options)
        {
            if (spec.Kind == OptionKind.Value)
            {
                var o = new Option<string[]>("--" + spec.Name)
                {
                    Arity = ArgumentArity.OneOrMore,
                    AllowMultipleArgumentsPerToken = false,
                    Description = spec.Summary,
                    HelpName = spec.Placeholder ?? spec.Name.ToUpperInvariant(),
                };
                if (spec.Choices is { Count: > 0 } choices) o.CompletionSources.Add(choices.ToArray());
                cmd.Add(o);
                continue;
            }
            cmd.Add(new Option<bool>("--" + spec.Name) { Arity = ArgumentArity.Zero, Description = spec.Summary });
            if (spec.Kind == OptionKind.Negatable)
                cmd.Add(new Option<bool>("--no-" + spec.Name) { Arity = ArgumentArity.Zero, Description = $"the opposite of --{spec.Name}" });
        }
        return cmd;
    }

    /// <summary>The whole tree (for completion and suggestions of command names).</summary>
    public static RootCommand Root()
    {
        var root = new RootCommand(RootDescription);
        foreach (var c in Commands) root.Add(Declare(c.Name, c.Options));
        var completion = new Command("completion", "print a shell completion script (bash)");
        completion.Add(new Argument<string>("shell") { Arity = ArgumentArity.ZeroOrOne });
        root.Add(completion);
        return root;
    }

    /// <summary>The library's typo corrections for the unmatched tokens of a parse, as " (did you mean --x?)", or "".</summary>
    public static string Suggestions(Command cmd, IReadOnlyList<string> args)
    {
        // ParseErrorAction prints the corrections for a parse whose unmatched tokens are errors; re-parse so, and read them.
        cmd.TreatUnmatchedTokensAsErrors = true;
        try
        {
            var strict = cmd.Parse(args, ParserConfig);
            var err = new StringWriter();
            strict.InvocationConfiguration.Error = err;
            strict.InvocationConfiguration.Output = err;
            new ParseErrorAction { ShowHelp = false, ShowTypoCorrections = true }.Invoke(strict);
            var names = err.ToString().Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                .Where(l => l.StartsWith("--", StringComparison.Ordinal) || Commands.Any(c => c.Name == l)).Distinct().ToList();
            return names.Count == 0 ? "" : $"; did you mean {string.Join(" or ", names)}?";
        }
        finally { cmd.TreatUnmatchedTokensAsErrors = false; }
    }

    /// <summary>A bash completion function that asks diffusion's own [suggest] directive.</summary>
    public const string BashScript = """
        # diffusion: bash completion from System.CommandLine's [suggest] directive.
        # Install: diffusion completion bash > ~/.local/share/bash-completion/completions/diffusion  (or: source <(diffusion completion bash))
        _diffusion_complete()
        {
            local line="${COMP_LINE:0:$COMP_POINT}"
            local IFS=$'\n'
            COMPREPLY=( $(diffusion "[suggest:${#line}]" "$COMP_LINE" 2>/dev/null) )
            if [ ${#COMPREPLY[@]} -eq 0 ]; then COMPREPLY=( $(compgen -f -- "${COMP_WORDS[COMP_CWORD]}") ); fi
        }
        complete -o filenames -F _diffusion_complete diffusion
        """;
}
