using Diffusion.Config;

namespace Diffusion.Training;

/// <summary>
/// One of the research remedies as users switch it on, declared once in the remedy's own file: its name (as
/// <c>diffusion train --remedy</c> takes it) and aliases, the problem it treats, its config keys, the <c>--set</c>
/// assignments that switch it on with its METHODS.md defaults, the parts it adds to the run's log, whether a config
/// has it on, and how a run describes it.
/// </summary>
public sealed record Remedy(string Name, string[] Aliases, string Problem, string[] ConfigKeys, string[] Preset, string[] LogParts,
                            Func<RunConfig, bool> IsOn, Func<RunConfig, string> Describe);

/// <summary>The registry of remedies: adding one means declaring its <see cref="Remedy"/> in its file and listing it here.</summary>
public static class Remedies
{
    public static readonly IReadOnlyList<Remedy> All =
        [InputPerturbation.Remedy, LossWeighting.Remedy, TimeSharing.Remedy, ConsistencyRegularizer.Remedy, Models.SmdNetwork.Remedy];

    /// <summary>The remedy a name or alias stands for, or null.</summary>
    public static Remedy? Find(string name) => All.FirstOrDefault(r => r.Name == name || r.Aliases.Contains(name));

    /// <summary>
    /// The <c>--set</c> assignments of a comma-separated list of remedy names (or <c>all</c>), in registry order
    /// within each name; an unknown name is a <see cref="UserError"/> listing the known ones.
    /// </summary>
    public static IEnumerable<string> Presets(string list)
    {
        foreach (var raw in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var remedies = raw == "all" ? All : [Find(raw) ?? throw new UserError($"--remedy {raw}: expected one of {string.Join(", ", All.Select(r => r.Name))}, all")];
            foreach (var r in remedies)
                foreach (var set in r.Preset) yield return set;
        }
    }

    /// <summary>The remedies a config has on, described with their settings (empty for the baseline).</summary>
    public static IReadOnlyList<string> Active(RunConfig cfg) => All.Where(r => r.IsOn(cfg)).Select(r => r.Describe(cfg)).ToList();
}
