namespace Platform.Gateway.Auth;

public static class Roles
{
    public const string Client = "client";
    public const string Operator = "operator";
    public const string Admin = "admin";

    /// <summary>
    /// A node key's role: the operator's account, but only for the node's own work (blob get/put, enrollment). It is
    /// a key's scope, never an account's role.
    /// </summary>
    public const string Node = "node";

    /// <summary>The roles of accounts (and of the people behind them); <see cref="Node"/> is none of them.</summary>
    public static readonly string[] All = [Client, Operator, Admin];

    /// <summary>Policy: fetching and pinning blobs, which every account's keys and node keys may do.</summary>
    public const string BlobIo = "blob-io";

    /// <summary>Policy: enrolling a node (POST /v1/nodes), with the operator's key or one of its node keys.</summary>
    public const string Enroll = "enroll";
}
