namespace Diffusion.Cli;

/// <summary>
/// The command line as a method: dispatch to a command and the one place errors become exit codes
/// (0 done, 1 a user error, 2 a usage error, 3 an internal error). Output goes through
/// <see cref="Console"/>, so a caller (the fuzz tests) can run commands in-process and read it.
/// </summary>
public static class Entry
{
    public static int Run(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.WriteLine(CommandLine.Usage());
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
        var cmd = CommandLine.Commands.FirstOrDefault(c => c.Name == command);
        if (cmd is null)
        {
            string hint = CommandLine.Suggestions(CommandLine.Root(), [command]);
            Console.Error.WriteLine($"error: unknown command '{command}'; expected {CommandLine.CommandList} (diffusion --help){hint}");
            return 2;
        }
        if (rest.Any(a => a is "-h" or "--help"))
        {
            Console.WriteLine(cmd.Help().Render());
            return 0;
        }
        try
        {
            return cmd.Run(rest);
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
