using System.Diagnostics;
using System.IO.Compression;
using System.Xml.Linq;

namespace Diffusion.Tests;

/// <summary>
/// The library's NuGet package as dotnet pack makes it (id, description, licence, README, XML docs, dependencies), and
/// the CLI project declared as a .NET tool. Installing and running the tool takes a minute (its package holds libtorch):
/// scripts/check-package.sh does it, run by .ci/run.
/// </summary>
public class PackagingTests
{
    internal static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Diffusion.slnx"))) return d.FullName;
        throw new InvalidOperationException("repository root (Diffusion.slnx) not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public void Library_packs_with_metadata_readme_and_xml_docs()
    {
        string root = RepoRoot(), outDir = TestUtil.TempDir("pack");
        var psi = new ProcessStartInfo("dotnet", ["pack", Path.Combine(root, "src/Diffusion/Diffusion.csproj"), "-c", "Release", "--no-build", "-nologo", "-v", "q", "-o", outDir])
        { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = root };
        using (var p = Process.Start(psi)!)
        {
            string o = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, o);
        }
        string nupkg = Assert.Single(Directory.GetFiles(outDir, "Diffusion.Core.*.nupkg"));
        using var zip = ZipFile.OpenRead(nupkg);
        var names = zip.Entries.Select(e => e.FullName).ToList();
        Assert.Contains("lib/net10.0/Diffusion.Core.dll", names);
        Assert.Contains("lib/net10.0/Diffusion.Core.xml", names);
        Assert.Contains("README.md", names);
        using var nuspecStream = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec")).Open();
        var meta = XDocument.Load(nuspecStream).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
        string Field(string name) => meta.Elements().Single(e => e.Name.LocalName == name).Value;
        Assert.Equal("Diffusion.Core", Field("id"));
        Assert.Contains("diffusion", Field("description"));
        Assert.Equal("MIT", Field("license"));
        Assert.Equal("README.md", Field("readme"));
        var deps = meta.Descendants().Where(e => e.Name.LocalName == "dependency").Select(e => e.Attribute("id")!.Value).ToList();
        Assert.Contains("TorchSharp", deps);
        Assert.DoesNotContain(deps, d => d.StartsWith("libtorch", StringComparison.OrdinalIgnoreCase));   // the application picks its libtorch
        var docs = XDocument.Load(zip.GetEntry("lib/net10.0/Diffusion.Core.xml")!.Open());
        Assert.Contains(docs.Descendants("member"), m => m.Attribute("name")!.Value == "T:Diffusion.Sampling.NoiseSource");
    }

    [Fact]
    public void Cli_is_declared_as_the_dotnet_tool_diffusion()
    {
        var project = XDocument.Load(Path.Combine(RepoRoot(), "src/Diffusion.Cli/Diffusion.Cli.csproj"));
        string? Prop(string name) => project.Descendants(name).FirstOrDefault()?.Value;
        Assert.Equal("true", Prop("PackAsTool"));
        Assert.Equal("diffusion", Prop("ToolCommandName"));
        Assert.Equal("Diffusion.Cli", Prop("PackageId"));
        Assert.Equal("MIT", Prop("PackageLicenseExpression"));
        Assert.False(string.IsNullOrWhiteSpace(Prop("Description")));
        string ci = File.ReadAllText(Path.Combine(RepoRoot(), ".ci/run"));
        Assert.Contains("make test", ci);
        Assert.Contains("scripts/check-package.sh", ci);
        string script = File.ReadAllText(Path.Combine(RepoRoot(), "scripts/check-package.sh"));
        Assert.Contains("dotnet tool install --tool-path", script);
        Assert.Contains("--add-source", script);
    }
}
