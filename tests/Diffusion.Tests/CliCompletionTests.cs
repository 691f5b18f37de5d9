namespace Diffusion.Tests;

/// <summary>What System.CommandLine adds to the command line: typo suggestions in the one-line errors, shell completion.</summary>
public class CliCompletionTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => FuzzTests.RunInProcess(args);

    [Fact]
    public void A_mistyped_option_or_command_gets_a_suggestion_on_its_one_line()
    {
        var r = Run("train", "--data", "toy:moons", "--stepz", "3");
        Assert.Equal(2, r.Code);
        Assert.Equal("error: diffusion train: unknown option --stepz (see diffusion train --help); did you mean --steps?", r.Err.TrimEnd());
        r = Run("sample", "--out", "x.npy", "--samplr", "ddim");
        Assert.Contains("did you mean --sampler?", r.Err);
        Assert.Single(r.Err.TrimEnd().Split('\n'));
        r = Run("smaple");
        Assert.Equal(2, r.Code);
        Assert.EndsWith("did you mean sample?", r.Err.TrimEnd());
        // Nothing alike: no suggestion, still one line.
        r = Run("merge", "--out", "x.npy", "--zzzzzzzz", "a.npz");
        Assert.Equal("error: diffusion merge: unknown option --zzzzzzzz (see diffusion merge --help)", r.Err.TrimEnd());
    }

    [Fact]
    public void Old_parser_conventions_hold()
    {
        Assert.Contains("--steps needs a value", Run("train", "--data", "toy:moons", "--steps").Err);
        Assert.Contains("--quiet takes no value", Run("train", "--quiet=1").Err);
        Assert.Contains("--steps given 2 times; give it once", Run("train", "--data", "toy:moons", "--steps", "3", "--steps=4").Err);
        Assert.Contains("unexpected argument '4'", Run("train", "--data", "toy:moons", "--steps", "3", "4").Err);
        Assert.Contains("unexpected argument '@args.txt'", Run("train", "@args.txt").Err);   // no response files
    }

    [Fact]
    public void Completion_comes_from_the_declared_commands_options_and_values()
    {
        string Complete(string line) => Run($"[suggest:{line.Length}]", line).Out;
        Assert.Contains("sample", Complete("diffusion sa").Split('\n', StringSplitOptions.TrimEntries));
        var options = Complete("diffusion sample --").Split('\n', StringSplitOptions.TrimEntries);
        foreach (var o in new[] { "--checkpoint", "--sampler", "--no-clip", "--order", "--rho", "--shard", "--guidance" })
            Assert.Contains(o, options);
        var samplers = Complete("diffusion sample --sampler ").Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(Sampling.Samplers.Names.Order(), samplers.Order());
        var r = Run("completion", "bash");
        Assert.Equal(0, r.Code);
        Assert.Contains("complete -o filenames -F _diffusion_complete diffusion", r.Out);
        Assert.Contains("error: diffusion completion: expected the shell", Run("completion", "fish").Err);
    }
}
