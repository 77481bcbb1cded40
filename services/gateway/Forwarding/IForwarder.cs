namespace Platform.Gateway.Forwarding;

/// <summary>Stands in for YARP (which cannot be restored here); YARP's IHttpForwarder can replace it.</summary>
public interface IForwarder
{
    /// <summary>Sends the current request to <paramref name="upstream"/> + <paramref name="path"/> and streams the answer back.</summary>
    Task ForwardAsync(HttpContext context, Uri upstream, string path, string accountId);
}
