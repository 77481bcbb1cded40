namespace Platform.Gateway.Auth;

public static class Roles
{
    public const string Client = "client";
    public const string Operator = "operator";
    public const string Admin = "admin";

    public static readonly string[] All = [Client, Operator, Admin];
}
