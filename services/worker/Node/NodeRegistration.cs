namespace Platform.Worker.Node;

public static class NodeRegistration
{
    /// <summary>The identity is needed before the bus is configured: it names this node's queue.</summary>
    public static NodeIdentity AddNode(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<WorkerOptions>().BindConfiguration(WorkerOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        var dataDirectory = builder.Configuration[$"{WorkerOptions.SectionName}:{nameof(WorkerOptions.DataDirectory)}"] ?? new WorkerOptions().DataDirectory;
        var slots = builder.Configuration.GetValue($"{WorkerOptions.SectionName}:{nameof(WorkerOptions.Slots)}", new WorkerOptions().Slots);
        var identity = NodeIdentity.LoadOrCreate(dataDirectory, Math.Clamp(slots, 1, 256));
        builder.Services.AddSingleton(identity);
        builder.Services.AddHttpClient<GatewayClient>((sp, http) =>
        {
            var options = sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<WorkerOptions>>().Value;
            http.BaseAddress = options.GatewayUrl;
            http.DefaultRequestHeaders.Authorization = new("Bearer", options.OperatorKey);
            http.Timeout = TimeSpan.FromMinutes(10);
        });
        builder.Services.AddSingleton<NodeStatus>();
        builder.Services.AddHostedService<Presence>();
        builder.Services.AddHealthChecks().AddCheck<NodeStatus>("registration", tags: ["ready"]);
        return identity;
    }
}
