namespace Diffusion.Training;

/// <summary>
/// A checkpoint section (or its header) whose bytes no longer hash to the SHA-256 written with them: the file was
/// damaged after it was saved. Its own type so that <c>--resume</c> can point at the previous checkpoint.
/// </summary>
public sealed class CheckpointDamagedError(string path, string section)
    : UserError($"checkpoint {path}: section '{section}' is damaged (SHA-256 mismatch)")
{
    /// <summary>The damaged file.</summary>
    public string Path { get; } = path;
    /// <summary>The damaged section: "header", "model", "ema" or "optimizer".</summary>
    public string Section { get; } = section;
}
