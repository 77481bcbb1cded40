using System.Text;

namespace Platform.Contracts.Signing;

/// <summary>
/// What a node signs to enroll: UTF-8 text, one field a line, signed with the key it registers (ECDSA P-256,
/// SHA-256, DER, base64, as <see cref="WorkerMessageSignature"/>):
/// <code>
/// platform-node-enrollment-v1
/// worker wrk_...
/// key MFkw...
/// </code>
/// </summary>
public static class NodeEnrollmentSignature
{
    public static byte[] Payload(string workerId, string publicKey) =>
        Encoding.UTF8.GetBytes($"platform-node-enrollment-v1\nworker {workerId}\nkey {publicKey}\n");
}
