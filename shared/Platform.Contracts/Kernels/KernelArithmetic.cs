namespace Platform.Contracts.Kernels;

/// <summary>
/// Which revision of the kernels' arithmetic a node computes (<see cref="Messages.WorkerOnline.KernelRevision"/>).
/// From <see cref="Reproducible"/> on, every backend follows the rules of docs/KERNELS.md (a fixed operation order
/// per output element, explicit fma, no fast math), so two honest nodes at the same revision produce the same bytes
/// and the scheduler compares their results by output CID alone. Raise it whenever a change to a kernel or a rule
/// could change an output's bytes: nodes at different revisions are compared within the tolerance again.
/// </summary>
public static class KernelArithmetic
{
    /// <summary>The first revision whose outputs are bitwise reproducible across backends, devices and thread counts.</summary>
    public const int Reproducible = 1;

    /// <summary>The revision this build of the worker computes.</summary>
    public const int Current = Reproducible;
}
