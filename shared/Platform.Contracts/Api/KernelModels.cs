namespace Platform.Contracts.Api;

/// <summary>
/// One kernel of the catalogue as GET /v1/kernels serves it: what it computes, its inputs and outputs in order, its
/// parameters, its shape rule (<paramref name="Shapes"/>, for people; the gateway checks the real rule at submit) and
/// the <paramref name="Version"/> of its results that receipts name.
/// </summary>
public sealed record KernelView(string Name, string Description, string Version, IReadOnlyList<string> Inputs, IReadOnlyList<KernelParameterView> Params,
    IReadOnlyList<string> Outputs, string Shapes);

/// <summary>
/// A parameter: <paramref name="Kind"/> is integer, number or choice; <paramref name="Min"/> and <paramref name="Max"/>
/// bound a number, <paramref name="Choices"/> lists a choice's words; <paramref name="Default"/> is used when it is not given.
/// </summary>
public sealed record KernelParameterView(string Name, string Description, string Kind, string Default, double? Min, double? Max, IReadOnlyList<string>? Choices);
