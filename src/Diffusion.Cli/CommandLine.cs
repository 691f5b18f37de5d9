using System.CommandLine;
using System.CommandLine.Completions;
using System.CommandLine.Invocation;

namespace Diffusion.Cli;

/// <summary>
/// The command tree on System.CommandLine: every command's options declared once (value options repeatable, one token
/// per occurrence; switches take no value), parsed by the library, which also gives the typo suggestions and the
/// shell completions (<c>diffusion [suggest:POS] "diffusion sa"</c>, or <c>diffusion completion bash</c> for a script).
/// </summary>
public static class CommandLine
{
    /// <summary>No response files (@FILE stays a plain argument, as before the library).</summary>
    public static readonly ParserConfiguration ParserConfig = new() { ResponseFileTokenReplacer = null };

    /// <summary>The commands, their one-line summaries and their options (values, switches).</summary>
    public static IReadOnlyList<(string Name, string Summary, Func<(IReadOnlyCollection<string> Values, IReadOnlyCollection<string> Switches)> Options)> Commands { get; } =
    [
        ("train", "train a model on toy, image or array data; writes a run folder", () => (TrainCommand.ValueOptions, TrainCommand.SwitchOptions)),
        ("sample", "draw samples from a checkpoint or from an exact Gaussian-mixture model", SampleCommand.Options),
        ("merge", "join the parts of a sharded sampling run (sample --shard k/S) in index order", () => (MergeCommand.ValueOptions, MergeCommand.SwitchOptions)),
        ("eval", "score samples against reference data: FID, KID, precision/recall, MMD", () => (EvalCommand.ValueOptions, EvalCommand.SwitchOptions)),
        ("diagnose", "measure exposure bias, x0 bias, Lipschitz in t, error propagation, mixture steps", () => (DiagnoseCommand.ValueOptions, [])),
        ("export", "write a run's EMA weights as safetensors (with its config) for PyTorch tools", () => (ExportCommand.ValueOptions, [])),
        ("bench", "training and sampling throughput of the reference UNet configs", () => (BenchCommand.ValueOptions, [])),
        ("study", "run a study plan (variants × seeds × samplers at equal budget), its status, its report", () => (StudyCommand.ValueOptions, StudyCommand.SwitchOptions)),
    ];

    // Short descriptions for completion menus (the full help is each command's Help text).
    private static readonly Dictionary<string, string> Descriptions = new()
    {
        ["config"] = "a config file or a named preset", ["set"] = "KEY=VALUE config assignment (repeatable)",
        ["remedy"] = "a remedy to apply (repeatable)", ["data"] = "data spec", ["data-dir"] = "where datasets are cached",
        ["steps"] = "steps", ["seed"] = "random seed", ["out"] = "output file or folder", ["threads"] = "libtorch CPU threads",
        ["init-weights"] = "start from these weights", ["resume-from"] = "checkpoint to resume from", ["precision"] = "float32 or bf16-mixed",
        ["resume"] = "continue the run in --out", ["force"] = "replace an existing run", ["quiet"] = "no progress output",
        ["checkpoint"] = "run folder or checkpoint file", ["model"] = "gmm:SPEC.json, an exact mixture", ["sampler"] = "sampler name",
        ["n"] = "number of samples", ["init-noise"] = "x_T as an .npy array", ["dtype"] = "float32 or float64",
        ["batch-size"] = "examples per forward pass", ["weights"] = "ema or model", ["eps-scale-b"] = "epsilon scaling b",
        ["eps-scale-k"] = "epsilon scaling k", ["shard"] = "k/S: this process's shard", ["class"] = "class number, name, all, random or none",
        ["guidance"] = "classifier-free guidance weight", ["clip"] = "clip x̂0 to [−1, 1]", ["no-clip"] = "do not clip x̂0",
        ["samples"] = "FILE.npy, a part .npz or DIR", ["reference"] = "data spec or saved statistics", ["features"] = "feature extractor",
        ["metrics"] = "fid,kid,pr,mmd", ["format"] = "output format", ["save-reference"] = "save the reference statistics",
        ["reference-n"] = "reference examples", ["inception-weights"] = "FID Inception weights", ["classifier-cache"] = "classifier cache folder",
        ["kid-subsets"] = "KID subsets", ["kid-subset-size"] = "KID subset size", ["k"] = "neighbours for precision/recall",
        ["mmd-n"] = "rows used for MMD²", ["save-partial"] = "write a mergeable partial", ["merge"] = "score partials", ["labels"] = "per-class scores",
        ["label"] = "a model's label (repeatable)", ["grid-points"] = "time grid points", ["delta"] = "Lipschitz Δ in steps",
        ["permutations"] = "MMD null permutations", ["mixture-steps"] = "step counts, comma-separated", ["configs"] = "configs, comma-separated",
        ["train-steps"] = "training steps", ["sample-steps"] = "sampling steps", ["sample-batch"] = "sampling batch",
        ["memory-steps"] = "steps of the memory run", ["status"] = "show each job's state and the time left",
        ["report"] = "write the Markdown report", ["report-out"] = "where the report goes",
    };

    private static readonly Dictionary<string, string[]> Choices = new()
    {
        ["dtype"] = ["float32", "float64"], ["weights"] = ["ema", "model"], ["format"] = ["text", "json", "safetensors"],
        ["class"] = ["all", "random", "none"], ["precision"] = ["float32", "bf16-mixed", "auto"],
    };

    /// <summary>One command's declarations: each value option repeatable with one token per occurrence, each switch valueless.</summary>
    public static Command Declare(string name, IEnumerable<string> valueOptions, IEnumerable<string> switchOptions)
    {
        var summary = Commands.FirstOrDefault(c => c.Name == name).Summary ?? name;
        var cmd = new Command(name, summary) { TreatUnmatchedTokensAsErrors = false };
        foreach (var v in valueOptions)
        {
            var o = new Option<string[]>("--" + v)
            {
                Arity = ArgumentArity.OneOrMore,
                AllowMultipleArgumentsPerToken = false,
                Description = Description(v),
                HelpName = v.ToUpperInvariant(),
            };
            if (v == "sampler") o.CompletionSources.Add(Sampling.Samplers.Names.ToArray());
            else if (Choices.TryGetValue(v, out var c)) o.CompletionSources.Add(c);
            cmd.Add(o);
        }
        foreach (var s in switchOptions)
            cmd.Add(new Option<bool>("--" + s) { Arity = ArgumentArity.Zero, Description = Description(s) });
        return cmd;
    }

    private static string Description(string option) =>
        Descriptions.TryGetValue(option, out var d) ? d
        : option.StartsWith("no-", StringComparison.Ordinal) && Descriptions.ContainsKey(option[3..]) ? "not " + Descriptions[option[3..]]
        : Sampling.Samplers.AllOptions().FirstOrDefault(o => o.Option.Key == option || "no-" + o.Option.Key == option).Option?.Help ?? option;

    /// <summary>The whole tree (for completion and suggestions of command names).</summary>
    public static RootCommand Root()
    {
        var root = new RootCommand("diffusion — train, sample and benchmark denoising diffusion models (TorchSharp, CPU)");
        foreach (var (name, _, options) in Commands)
        {
            var (values, switches) = options();
            root.Add(Declare(name, values, switches));
        }
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
