using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Diffusion.Tests;

/// <summary>
/// deploy/: the Kubernetes Indexed Job and the Slurm array are rendered as their job engine would (the index
/// variable set for each task, the shell script run with a stand-in `diffusion` that records its command lines), and
/// every recorded command is then run through the CLI's real entry point on a tiny run: the index maps to --shard k/S
/// with S = the job's task count, the shards' parts merge, and the merged samples equal the unsharded run.
/// </summary>
public class DeployTests
{
    private static (int Code, string Out, string Err) Cli(params string[] args) => FuzzTests.RunInProcess(args);
    private static void Ok((int Code, string Out, string Err) r, string what) => Assert.True(r.Code == 0, $"{what}: {r.Err}");

    /// <summary>A data folder as the jobs expect it: run/ (a tiny checkpoint) and reference.npz.</summary>
    private static string DataFolder(string name)
    {
        string data = TestUtil.TempDir(name);
        string run = ShardCliTests.TinyCheckpoint(data, "run");
        string refSamples = Path.Combine(data, "ref-samples.npy");
        Ok(Cli("sample", "--checkpoint", run, "--n", "8", "--steps", "3", "--out", refSamples, "--quiet"), "reference samples");
        Ok(Cli("eval", "--samples", refSamples, "--reference", "toy:gmm-grid", "--reference-n", "300", "--save-reference", Path.Combine(data, "reference.npz"), "--quiet"), "reference");
        return data;
    }

    /// <summary>Runs a shell script with a stand-in `diffusion` (on PATH and as $DIFFUSION) that records each command line.</summary>
    private static List<string[]> RunScript(string shell, string script, IDictionary<string, string> env)
    {
        string dir = TestUtil.TempDir("deploy-shim"), log = Path.Combine(dir, "commands.log"), shim = Path.Combine(dir, "diffusion");
        File.WriteAllText(shim, "#!/bin/sh\n(IFS=$(printf '\\037'); printf '%s\\n' \"$*\") >> \"" + log + "\"\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(shim, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var psi = new ProcessStartInfo(shell) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        foreach (var (k, v) in env) psi.Environment[k] = v;
        psi.Environment["PATH"] = dir + ":" + Environment.GetEnvironmentVariable("PATH");
        psi.Environment["DIFFUSION"] = shim;
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd() + p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{shell} script failed: {err}");
        return File.Exists(log) ? File.ReadAllLines(log).Select(l => l.Split('\u001f')).ToList() : [];
    }

    /// <summary>The block scalar of a manifest's container args ("- |" and the lines indented below it).</summary>
    private static string ScriptOf(string yaml)
    {
        var lines = yaml.Split('\n');
        int at = Array.FindIndex(lines, l => l.Trim() == "- |");
        Assert.True(at >= 0, "no '- |' script in the manifest's args");
        int indent = lines[at + 1].Length - lines[at + 1].TrimStart().Length;
        return string.Join("\n", lines.Skip(at + 1).TakeWhile(l => l.Trim().Length == 0 || l.Length - l.TrimStart().Length >= indent)
                                      .Select(l => l.Length >= indent ? l[indent..] : ""));
    }

    private static int YamlInt(string yaml, string key) => int.Parse(Regex.Match(yaml, $@"^\s*{key}:\s*(\d+)\s*$", RegexOptions.Multiline).Groups[1].Value);

    /// <summary>Checks the shards' command lines, then runs every command in order through the real CLI.</summary>
    private static void CheckAndRun(List<List<string[]>> shardCommands, Func<List<string[]>> renderMerge, int shards, string data)
    {
        for (int k = 0; k < shards; k++)
        {
            var cmds = shardCommands[k];
            Assert.Equal(["sample", "eval"], cmds.Select(c => c[0]));
            var sample = cmds[0];
            Assert.Equal($"{k}/{shards}", sample[Array.IndexOf(sample, "--shard") + 1]);
            Assert.Equal(sample[Array.IndexOf(sample, "--out") + 1], cmds[1][Array.IndexOf(cmds[1], "--samples") + 1]);
            foreach (var c in cmds) Ok(Cli(c), $"shard {k}: diffusion {string.Join(' ', c)}");
        }
        var mergeCommands = renderMerge();                    // after the shards wrote their parts, as the job engine runs it
        Assert.Equal(["merge", "eval"], mergeCommands.Select(c => c[0]));
        Assert.Equal(shards, mergeCommands[0].Count(a => a.Contains("/parts/sample-")));   // the shell's glob found every part
        foreach (var c in mergeCommands.Take(1)) Ok(Cli(c), $"merge: diffusion {string.Join(' ', c)}");
        var scores = Cli(mergeCommands[1]);
        Ok(scores, "eval --merge");
        Assert.Contains("\"fid\"", scores.Out);
        // The merged samples are the unsharded run's.
        var sample0 = shardCommands[0][0];
        var whole = sample0.ToList();
        int s = whole.IndexOf("--shard");
        whole.RemoveRange(s, 2);
        whole[whole.IndexOf("--out") + 1] = Path.Combine(data, "whole.npy");
        Ok(Cli([.. whole]), "unsharded");
        Assert.True(File.ReadAllBytes(Path.Combine(data, "whole.npy")).SequenceEqual(File.ReadAllBytes(Path.Combine(data, "samples.npy"))), "merged ≠ unsharded");
    }

    [Fact]
    public void Kubernetes_indexed_job_maps_the_completion_index_to_its_shard()
    {
        string root = PackagingTests.RepoRoot();
        string job = File.ReadAllText(Path.Combine(root, "deploy/kubernetes/sample-job.yaml"));
        string merge = File.ReadAllText(Path.Combine(root, "deploy/kubernetes/merge-job.yaml"));
        Assert.Matches(@"(?m)^\s*completionMode:\s*Indexed\s*$", job);
        int completions = YamlInt(job, "completions");
        Assert.True(completions > 1);
        string data = DataFolder("deploy-k8s");
        var env = new Dictionary<string, string> { ["DATA"] = data, ["N"] = "9", ["SEED"] = "0" };
        var shards = Enumerable.Range(0, completions)
            .Select(k => RunScript("/bin/sh", ScriptOf(job), new Dictionary<string, string>(env) { ["JOB_COMPLETION_INDEX"] = k.ToString() })).ToList();
        CheckAndRun(shards, () => RunScript("/bin/sh", ScriptOf(merge), env), completions, data);
    }

    [Fact]
    public void Slurm_array_maps_the_task_id_and_count_to_its_shard()
    {
        string root = PackagingTests.RepoRoot();
        string array = File.ReadAllText(Path.Combine(root, "deploy/slurm/sample-array.sbatch"));
        string merge = File.ReadAllText(Path.Combine(root, "deploy/slurm/merge.sbatch"));
        var m = Regex.Match(array, @"(?m)^#SBATCH --array=(\d+)-(\d+)\s*$");
        Assert.True(m.Success, "no #SBATCH --array=A-B line");
        int first = int.Parse(m.Groups[1].Value), last = int.Parse(m.Groups[2].Value), count = last - first + 1;
        string data = DataFolder("deploy-slurm");
        var env = new Dictionary<string, string> { ["DATA"] = data, ["N"] = "9", ["SEED"] = "0" };
        var shards = Enumerable.Range(first, count).Select(id => RunScript("/bin/bash", array, new Dictionary<string, string>(env)
        {
            ["SLURM_ARRAY_TASK_ID"] = id.ToString(), ["SLURM_ARRAY_TASK_COUNT"] = count.ToString(), ["SLURM_ARRAY_TASK_MIN"] = first.ToString(),
        })).ToList();
        CheckAndRun(shards, () => RunScript("/bin/bash", merge, env), count, data);
        string submit = File.ReadAllText(Path.Combine(root, "deploy/slurm/submit.sh"));
        Assert.Contains("--dependency=\"afterok:", submit);
    }

    [Fact]
    public void Dockerfile_builds_with_the_products_own_setup()
    {
        string docker = File.ReadAllText(Path.Combine(PackagingTests.RepoRoot(), "deploy/Dockerfile"));
        Assert.Matches(@"(?m)^FROM mcr\.microsoft\.com/dotnet/sdk:10\.0", docker);
        Assert.Contains("bash scripts/setup.sh", docker);
        Assert.Contains("ln -s /opt/diffusion/diffusion /usr/local/bin/diffusion", docker);   // the jobs call `diffusion`
    }
}
