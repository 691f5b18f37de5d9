using Diffusion.Data;
using Diffusion.IO;
using Diffusion.Sampling;

namespace Diffusion.Cli;

/// <summary><c>diffusion merge PARTS... --out FILE</c>: joins the parts of a sharded sampling run in index order.</summary>
public static class MergeCommand
{
    /// <summary>The options, in the order the help lists them.</summary>
    internal static readonly IReadOnlyList<OptionSpec> Options =
    [
        OptionSpec.Value("out", "FILE", "the merged samples: FILE.npy, FILE.png or FILE.npz"),
        OptionSpec.Switch("quiet", "no summary line on stderr"),
    ];

    public static HelpPage Help => new("""
        diffusion merge PART.npz... --out FILE.npy|FILE.png|FILE.npz [--quiet]
        """, """
        Joins the parts written by diffusion sample --shard k/S in sample-index order: the result equals, bit for bit,
        the same run drawn unsharded (--n N in one process). Parts must come from one run — the same checkpoint file
        (SHA-256), weights, sampler and every option, seed, dtype and N — and together hold every index 0 … N−1 exactly
        once (parts of different shard counts may be mixed). Anything else is refused, naming the part and the reason.
        FILE.npz is a part of the whole run (manifest with S = 1), which diffusion eval reads like an .npy. The parts of
        a class-conditional model carry each sample's class; merged into FILE.npy, they go to FILE.labels.npy beside
        it (as diffusion sample writes them unsharded), for diffusion eval --labels.
        """, Options);

    public static int Run(string[] argv)
    {
        var a = new Args("merge", argv, Options);
        string outPath = a.Require("out", "FILE.npy|FILE.png|FILE.npz");
        string ext = Path.GetExtension(outPath).ToLowerInvariant();
        if (ext != ".npy" && ext != ".png" && ext != ".npz") throw new UsageError($"diffusion merge: --out {outPath}: expected a .npy, .png or .npz file");
        if (a.Positionals.Count == 0) throw new UsageError("diffusion merge: give the part files to join (PART.npz ...)");
        foreach (var p in a.Positionals)
            if (Path.GetFullPath(p) == Path.GetFullPath(outPath)) throw new UsageError($"diffusion merge: --out {outPath} is one of the parts; write the merged file elsewhere");
        var (samples, manifest, labels) = SampleParts.Merge(a.Positionals);
        string labelsNote = "";
        using (samples)
        using (labels)
        {
            if (ext == ".npz") SampleParts.Write(outPath, samples, manifest, labels);
            else
            {
                SampleOutput.Save(outPath, samples, null, $"{manifest.N} samples, {manifest.Description}");
                if (labels is not null && ext == ".npy")
                {
                    Npy.WriteLabels(SampleRun.LabelsPath(outPath), labels.data<long>().ToArray());
                    labelsNote = $" (labels → {SampleRun.LabelsPath(outPath)})";
                }
            }
        }
        if (!a.Switch("quiet"))
            Console.Error.WriteLine($"merge: {a.Positionals.Count} parts, {manifest.N} samples ({manifest.Description}, seed {manifest.Seed}) → {outPath}{labelsNote}");
        return 0;
    }
}
