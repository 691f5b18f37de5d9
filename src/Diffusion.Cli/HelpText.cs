namespace Diffusion.Cli;

/// <summary>How an option is given: with a value (repeatable, one token per occurrence), as a switch, or as a switch
/// with its negation (<c>--x</c> and <c>--no-x</c>).</summary>
public enum OptionKind { Value, Switch, Negatable }

/// <summary>
/// One option of a command, declared once: what the parser accepts (<see cref="ParserNames"/>), the help entry
/// (<see cref="Flag"/> and <see cref="Help"/>, possibly several lines), the short description for completion menus
/// (<see cref="Summary"/>) and the values offered for completion (<see cref="Choices"/>).
/// </summary>
public sealed record OptionSpec(string Name, string? Placeholder, string Help, OptionKind Kind = OptionKind.Value, IReadOnlyList<string>? Choices = null)
{
    public static OptionSpec Value(string name, string? placeholder, string help, IReadOnlyList<string>? choices = null) => new(name, placeholder, help, OptionKind.Value, choices);
    public static OptionSpec Switch(string name, string help) => new(name, null, help, OptionKind.Switch);
    public static OptionSpec Negatable(string name, string help) => new(name, null, help, OptionKind.Negatable);

    /// <summary>The left column of the help entry, e.g. <c>--steps N</c>, <c>--quiet</c>, <c>--clip/--no-clip</c>.</summary>
    public string Flag => Kind switch
    {
        OptionKind.Value => Placeholder is null ? "--" + Name : $"--{Name} {Placeholder}",
        OptionKind.Switch => "--" + Name,
        _ => $"--{Name}/--no-{Name}",
    };

    /// <summary>The option names the parser accepts (without "--"): the name, and for a negatable switch also no-NAME.</summary>
    public IReadOnlyList<string> ParserNames => Kind == OptionKind.Negatable ? [Name, "no-" + Name] : [Name];

    /// <summary>The first line of the help, without a trailing ':' or ',' (a short description for completion menus).</summary>
    public string Summary => Help.Split('\n')[0].Trim().TrimEnd(':', ',', ';');
}

/// <summary>
/// A command's <c>--help</c>: the usage synopsis and a prose paragraph as written, optionally a section before the
/// options (<see cref="Before"/>), the option list rendered from the declarations in declaration order, and optional
/// paragraphs after it (<see cref="After"/>).
/// </summary>
public sealed record HelpPage(string Usage, string About, IReadOnlyList<OptionSpec> Options)
{
    public string? Before { get; init; }
    public string? After { get; init; }

    public string Render()
    {
        var parts = new List<string> { Usage.TrimEnd(), About.TrimEnd() };
        if (Before is not null) parts.Add(Before.TrimEnd());
        parts.Add(HelpText.Entries(Options.Select(o => (o.Flag, o.Help))));
        if (After is not null) parts.Add(After.TrimEnd());
        return string.Join("\n\n", parts);
    }
}

/// <summary>
/// The two-column layout of the help: an entry's left part (a flag) indented by two spaces, its text from
/// <see cref="Column"/> on; a left part too long to leave two spaces before the column gets a line of its own.
/// The text keeps its own line breaks (and a line's leading spaces, for sub-lists); a line that would pass
/// <see cref="Width"/> is wrapped at spaces, its continuation indented like the line.
/// </summary>
public static class HelpText
{
    /// <summary>The 0-based column where an entry's text starts.</summary>
    public const int Column = 21;

    /// <summary>The width lines are wrapped at.</summary>
    public const int Width = 120;

    public static string Entries(IEnumerable<(string Left, string Text)> entries, int column = Column, int width = Width)
    {
        var lines = new List<string>();
        string indent = new(' ', column);
        foreach (var (left, text) in entries)
        {
            var body = Wrap(text, width - column);
            string head = "  " + left;
            if (head.Length + 2 <= column) lines.Add((head.PadRight(column) + body[0]).TrimEnd());
            else
            {
                lines.Add(head);
                lines.Add((indent + body[0]).TrimEnd());
            }
            lines.AddRange(body.Skip(1).Select(l => (indent + l).TrimEnd()));
        }
        return string.Join("\n", lines);
    }

    /// <summary>The text's lines, each longer than <paramref name="width"/> broken at its last space that fits (or, for a
    /// longer word, its first space); continuations keep the line's leading spaces.</summary>
    public static IReadOnlyList<string> Wrap(string text, int width)
    {
        var result = new List<string>();
        foreach (var raw in text.ReplaceLineEndings("\n").Split('\n'))
        {
            string line = raw.TrimEnd();
            string lead = new(' ', line.Length - line.TrimStart().Length);
            while (line.Length > width)
            {
                int cut = line.LastIndexOf(' ', width);
                if (cut <= lead.Length) cut = line.IndexOf(' ', Math.Max(width, lead.Length + 1));
                if (cut < 0) break;
                result.Add(line[..cut].TrimEnd());
                line = lead + line[(cut + 1)..].TrimStart();
            }
            result.Add(line);
        }
        return result;
    }
}
