namespace Platform.Client;

/// <summary>
/// The API operation an SDK method calls, as the gateway's OpenAPI document names it ("GET /v1/jobs/{id}"), and the
/// request body it sends when its parameters do not say (a <c>StakeRequest</c> built from an amount). The agreement
/// test (tests/Platform.Gateway.Tests/Documentation/SdkAgreementTests.cs) holds every method to the document: the
/// operation exists, the method returns the type the operation answers with and sends the type it takes.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class ApiOperationAttribute(string operation) : Attribute
{
    public string Operation { get; } = operation;

    /// <summary>The JSON body the method sends, when none of its parameters is it.</summary>
    public Type? Body { get; init; }
}
