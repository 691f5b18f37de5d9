namespace Diffusion.Study;

/// <summary>
/// A job's own failure while it trains (its loss diverged): the worker records it in the job's <c>failed.json</c> and goes
/// on with the other jobs. Every other error (a missing data file, a plan that no longer matches the work) stops the worker.
/// </summary>
public sealed class StudyJobFailedError(string message, Exception? inner = null) : UserError(message, inner);
