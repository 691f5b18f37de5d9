namespace Diffusion;

/// <summary>
/// An error the user can cause and fix (missing file, wrong shape, unknown option, corrupt data).
/// Its message is one line naming the input and what was expected; the command line prints it
/// without a stack trace.
/// </summary>
public class UserError(string message, Exception? inner = null) : Exception(message, inner);
