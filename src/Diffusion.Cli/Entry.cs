namespace Diffusion.Cli;

/// <summary>
/// The command line as a method: dispatch to a command and the one place errors become exit codes
/// (0 done, 1 a user error, 2 a usage error, 3 an internal error). Output goes through
/// <see cref="Console"/>, so a caller (the fuzz tests) can run commands in-process and read it.
/// </summary>
public static class Entry
{
    public const string Usage = """
        diffusion — train, sample and benchmark denoising diffusion models (TorchSharp, CPU)

        usage: diffusion <command> [options]      (diffusion <command> --help for its options)

          train    train a model on toy, image or array data; writes a run folder
          sample   draw samples from a checkpoint or from an exact Gaussian-mixture model
          merge    join the parts of a sharded sampling run (sample --shard k/S) in index order
          eval     score samples against reference data: FID, KID, precision/recall, MMD
          diagnose measure exposure bias, x0 bias, Lipschitz in t, error propagation, mixture steps
          export   write a run's EMA weights as safetensors (with its config) for PyTorch tools
          bench    training and sampling throughput of the reference UNet configs
          study    run a study plan (variants × seeds × samplers at equal budget), its status, its report

        Shell completion: source <(diffusion completion bash). A mistyped option or command gets a suggestion.
        """;

    public static int Run(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        // Shell completion: the library's [suggest:POS] directive over the whole command tree, and a script that calls it.
        if (args[0].StartsWith("[suggest", StringComparison.Ordinal))
        {
            var parsed = CommandLine.Root().Parse(args, CommandLine.ParserConfig);
            parsed.InvocationConfiguration.Output = Console.Out;
            parsed.InvocationConfiguration.Error = Console.Error;
            return parsed.Invoke(parsed.InvocationConfiguration);
        }
        if (args[0] == "completion")
        {
            if (args.Length != 2 || args[1] != "bash")
            {
                Console.Error.WriteLine("error: diffusion completion: expected the shell: diffusion completion bash");
                return 2;
            }
            Console.WriteLine(CommandLine.BashScript);
            return 0;
        }
        string command = args[0];
        string[] rest = args[1..];
        Util.NativeAllocator.Tune(); // reuse freed tensor memory instead of page-faulting it afresh (see NativeAllocator)
        (Func<string[], int> run, string help) = command switch
        {
            "train" => ((Func<string[], int>)TrainCommand.Run, TrainCommand.Help),
            "sample" => (SampleCommand.Run, SampleCommand.Help),
            "merge" => (MergeCommand.Run, MergeCommand.Help),
            "bench" => (BenchCommand.Run, BenchCommand.Help),
            "eval" => (EvalCommand.Run, EvalCommand.Help),
            "diagnose" => (DiagnoseCommand.Run, DiagnoseCommand.Help),
            "export" => (ExportCommand.Run, ExportCommand.Help),
            "study" => (StudyCommand.Run, StudyCommand.Help),
            _ => (null!, ""),
        };
        if (run is null)
        {
            string hint = CommandLine.Suggestions(CommandLine.Root(), [command]);
            Console.Error.WriteLine($"error: unknown command '{command}'; expected train, sample, merge, eval, diagnose, export, bench or study (diffusion --help){hint}");
            return 2;
        }
        if (rest.Any(a => a is "-h" or "--help"))
        {
            Console.WriteLine(help);
            return 0;
        }
        try
        {
            return run(rest);
        }
        catch (UsageError e)
        {
            ProgressBar.StopAll();
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
        catch (UserError e)
        {
            ProgressBar.StopAll();
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("DIFFUSION_DEBUG") != "1")
        {
            ProgressBar.StopAll();
            Console.Error.WriteLine($"error: internal error ({e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}); set DIFFUSION_DEBUG=1 for the stack trace");
            return 3;
        }
    }
}
