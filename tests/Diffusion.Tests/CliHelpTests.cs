using System.Text.RegularExpressions;
using Diffusion.Cli;

namespace Diffusion.Tests;

/// <summary>Each command's --help is rendered from its option declarations, which the parser reads too: it cannot drift.</summary>
public class CliHelpTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => FuzzTests.RunInProcess(args);

    [Fact]
    public void Every_declared_option_has_help_text()
    {
        foreach (var c in CommandLine.Commands)
        {
            Assert.NotEmpty(c.Options);
            foreach (var o in c.Options)
            {
                Assert.False(string.IsNullOrWhiteSpace(o.Help), $"diffusion {c.Name} --{o.Name} has no help text");
                Assert.False(string.IsNullOrWhiteSpace(o.Summary), $"diffusion {c.Name} --{o.Name} has no first line of help");
            }
            var names = c.Options.SelectMany(o => o.ParserNames).ToList();
            Assert.True(names.Count == names.Distinct().Count(), $"diffusion {c.Name} declares an option twice");
        }
    }

    [Fact]
    public void Help_lists_every_option_the_parser_accepts()
    {
        foreach (var c in CommandLine.Commands)
        {
            var r = Run(c.Name, "--help");
            Assert.Equal(0, r.Code);
            // The flags of the option entries: lines that start with "  --", up to the two spaces before the text.
            var entries = r.Out.ReplaceLineEndings("\n").Split('\n').Where(l => l.StartsWith("  --", StringComparison.Ordinal)).ToList();
            var listed = entries.Select(l => l.IndexOf("  ", 2, StringComparison.Ordinal) is int gap and > 0 ? l[..gap] : l)
                                .SelectMany(flags => Regex.Matches(flags, @"--[a-z0-9][a-z0-9-]*").Select(m => m.Value)).ToHashSet();
            var accepted = CommandLine.Declare(c.Name, c.Options).Options.Select(o => o.Name).ToList();
            Assert.NotEmpty(accepted);
            foreach (var name in accepted)
                Assert.True(listed.Contains(name), $"diffusion {c.Name} accepts {name}, but its --help has no entry for it:\n{r.Out}");
            Assert.Equal(c.Options.Count, entries.Count);   // one entry per declaration, none by hand
        }
    }

    [Fact]
    public void Root_help_lists_every_command_with_its_summary()
    {
        var r = Run("--help");
        Assert.Equal(0, r.Code);
        foreach (var c in CommandLine.Commands)
            Assert.Matches($@"(?m)^  {Regex.Escape(c.Name)} +{Regex.Escape(c.Summary)}$", r.Out.ReplaceLineEndings("\n"));
        Assert.Equal(r.Out, Run().Out);
    }

    [Fact]
    public void Entries_start_their_text_at_column_21_and_wrap_under_it()
    {
        string Words(int n) => string.Join(" ", Enumerable.Repeat("word", n));
        OptionSpec[] options =
        [
            OptionSpec.Value("steps", "N", "total steps"),
            OptionSpec.Switch("quiet", "first line\n  a sub-line " + Words(20)),
            OptionSpec.Value("abcdefghijklmno", null, "a 17-character flag fits"),
            OptionSpec.Value("abcdefghijklmnop", null, "an 18-character flag does not"),
            OptionSpec.Negatable("clip", "both"),
            OptionSpec.Value("words", null, Words(30)),
        ];
        string pad = new(' ', 21);
        string expected = string.Join("\n",
            "usage: x [--steps N]",
            "",
            "Does x.",
            "",
            "  --steps N          total steps",
            "  --quiet            first line",
            pad + "  a sub-line " + Words(17),
            pad + "  " + Words(3),
            "  --abcdefghijklmno  a 17-character flag fits",
            "  --abcdefghijklmnop",
            pad + "an 18-character flag does not",
            "  --clip/--no-clip   both",
            "  --words            " + Words(20),
            pad + Words(10));
        Assert.Equal(21, HelpText.Column);
        Assert.Equal(120, HelpText.Width);
        Assert.Equal(expected, new HelpPage("usage: x [--steps N]\n", "Does x.\n", options).Render());
        Assert.All(expected.Split('\n'), l => Assert.True(l.Length <= HelpText.Width, l));
        Assert.Equal(["clip", "no-clip"], options[4].ParserNames);
        Assert.Equal("first line", options[1].Summary);
    }
}
