namespace Platform.Gateway.Forwarding;

/// <summary>Stands in for YARP (which cannot be restored here); YARP's IHttpForwarder can replace it.</summary>
public interface IForwarder
{
    /// <summary>
    /// Sends the current request to an instance of <paramref name="upstream"/> at <paramref name="path"/> and
    /// streams the answer back; <paramref name="timeout"/> bounds the wait for the upstream's response headers
    /// (the configured default when null).
    /// </summary>
    Task ForwardAsync(HttpContext context, UpstreamPool upstream, string path, string accountId, TimeSpan? timeout = null);
}
