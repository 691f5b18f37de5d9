using System.Diagnostics;
using Diffusion.Cli;

namespace Diffusion.Tests;

/// <summary>
/// Every command that reads a user's file, run in-process on every damaged file of its kind in Fixtures/fuzz
/// (written by <see cref="FuzzCorpus"/>): each must exit 1 with one line on stderr, "error: " and the file's name,
/// no stack trace, and write nothing to its output.
/// </summary>
public class FuzzTests
{
    // Should a damaged file slip through, the run it starts is tiny.
    private static readonly string[] TinyTrain = ["--out", "{O}/run", "--steps", "1", "--quiet", "--set", "train.batch-size=4", "--set", "sample.n=4", "--set", "sample.steps=2"];

    // The commands, each with the corpus families it reads; {F} is the damaged file or folder, {V} Fixtures/fuzz/valid,
    // {O} a fresh temp folder that must stay empty.
    private static readonly (string Entry, string[] Families, string[] Args)[] Entries =
    [
        ("train --data npy:", ["npy"], ["train", "--data", "npy:{F}", .. TinyTrain]),
        ("train --config", ["config"], ["train", "--config", "{F}", "--out", "{O}/run", "--quiet"]),
        ("train --data gmm:", ["gmm"], ["train", "--data", "gmm:{F}", .. TinyTrain]),
        ("train --data images:", ["images"], ["train", "--data", "images:{F}", .. TinyTrain]),
        ("train --data fashion-mnist --data-dir", ["idx"], ["train", "--data", "fashion-mnist", "--data-dir", "{F}", .. TinyTrain]),
        ("sample --checkpoint", ["ckpt"], ["sample", "--checkpoint", "{F}", "--out", "{O}/x.npy", "--n", "4", "--steps", "2", "--quiet"]),
        ("sample --model gmm:", ["gmm"], ["sample", "--model", "gmm:{F}", "--out", "{O}/x.npy", "--n", "4", "--steps", "2", "--quiet"]),
        ("sample --init-noise", ["npy", "noise"], ["sample", "--model", "gmm:{V}/mixture.json", "--init-noise", "{F}", "--out", "{O}/x.npy", "--steps", "2", "--quiet"]),
        ("eval --samples", ["npy", "samples", "images"], ["eval", "--samples", "{F}", "--reference", "gmm:{V}/mixture.json", "--reference-n", "50", "--save-reference", "{O}/ref.npz", "--quiet"]),
        ("eval --reference", ["npz"], ["eval", "--samples", "{V}/samples.npy", "--reference", "{F}", "--quiet"]),
        ("eval --reference gmm:", ["gmm"], ["eval", "--samples", "{V}/samples.npy", "--reference", "gmm:{F}", "--reference-n", "50", "--save-reference", "{O}/ref.npz", "--quiet"]),
        ("diagnose x0-bias --checkpoint", ["ckpt"], ["diagnose", "x0-bias", "--checkpoint", "{F}", "--out", "{O}", "--n", "8", "--grid-points", "3"]),
        ("diagnose x0-bias --model gmm:", ["gmm"], ["diagnose", "x0-bias", "--model", "gmm:{F}", "--out", "{O}", "--n", "8", "--grid-points", "3"]),
    ];

    /// <summary>One case per (command, damaged file): the family folder and the file's name.</summary>
    public static IEnumerable<object[]> Cases()
    {
        string root = FuzzCorpus.OutputDir;
        foreach (var (entry, families, _) in Entries)
            foreach (var family in families)
            {
                var dir = Path.Combine(root, family);
                var items = family is "idx" or "images" ? Directory.GetDirectories(dir) : Directory.GetFiles(dir);
                foreach (var item in items.Order(StringComparer.Ordinal))
                    yield return [entry, $"{family}/{Path.GetFileName(item)}"];
            }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Damaged_file_is_one_line_error(string entry, string file)
    {
        string path = Path.Combine(FuzzCorpus.OutputDir, file);
        string outDir = TestUtil.TempDir("fuzz-out");
        var args = Entries.Single(e => e.Entry == entry).Args
            .Select(a => a.Replace("{F}", path).Replace("{V}", Path.Combine(FuzzCorpus.OutputDir, "valid")).Replace("{O}", outDir)).ToArray();
        var (code, stdout, stderr) = RunInProcess(args);
        try
        {
            var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(code == 1 && lines.Length == 1, $"{entry} {file}: exit {code}, stderr:\n{stderr}");
            Assert.StartsWith("error: ", lines[0]);
            Assert.Contains(Path.GetFileName(path), lines[0]);
            Assert.DoesNotContain("   at ", stderr);
            Assert.Equal("", stdout);
            Assert.Empty(Directory.EnumerateFileSystemEntries(outDir));
        }
        finally { Directory.Delete(outDir, recursive: true); }
    }

    [Fact]
    public void Corpus_is_large_and_small()
    {
        var files = Directory.GetFiles(FuzzCorpus.OutputDir, "*", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}valid{Path.DirectorySeparatorChar}")).ToList();
        Assert.True(files.Count >= 60, $"{files.Count} damaged files");
        Assert.True(files.Sum(f => new FileInfo(f).Length) < 1 << 20);
    }

    /// <summary>
    /// Rewrites Fixtures/fuzz in the source tree when DIFFUSION_FUZZ_REGENERATE=1
    /// (<c>DIFFUSION_FUZZ_REGENERATE=1 dotnet test tests/Diffusion.Tests --filter FuzzCorpusGenerator</c>); otherwise does nothing.
    /// </summary>
    [Fact]
    public void FuzzCorpusGenerator()
    {
        if (Environment.GetEnvironmentVariable("DIFFUSION_FUZZ_REGENERATE") != "1") return;
        FuzzCorpus.Generate(FuzzCorpus.SourceDir());
    }

    /// <summary>The CLI in this process, its stdout and stderr captured.</summary>
    internal static (int Code, string Out, string Err) RunInProcess(string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try { return (Entry.Run(args), o.ToString(), e.ToString()); }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }
}
