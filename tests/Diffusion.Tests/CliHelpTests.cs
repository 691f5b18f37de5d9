using Diffusion.Cli;

namespace Diffusion.Tests;

/// <summary>The help's option list is rendered from the option declarations.</summary>
public class CliHelpTests
{
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
