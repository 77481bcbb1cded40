using System.Reflection;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Resources;
using Platform.Hosting.Database;
using Platform.Hosting.Health;
using Platform.Hosting.Http;
using Platform.Hosting.Messaging;
using Platform.Hosting.Metrics;
using Platform.Hosting.Outbox;
using Platform.Hosting.Tracing;

namespace Platform.Hosting;

/// <summary>The one place that wires a service to the platform: broker, database, logging, health, errors.</summary>
public static class PlatformDefaults
{
    /// <summary>
    /// A service's builder, rooted where the service's files are (its build or publish folder) rather than in the
    /// directory it was started from. The host watches its content root, subfolders included, for configuration files:
    /// rooted in the repository (as <c>./platform up</c> starts it), every process woke for each write to the logs and
    /// to Postgres' and RabbitMQ's data under .platform, 5.6% of the machine's CPU under load by <c>perf</c>.
    /// </summary>
    public static WebApplicationBuilder CreateBuilder(string[] args) =>
        WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });

    /// <param name="service">Short service name (gateway, scheduler...): prefixes queues and names the default database.</param>
    /// <param name="serviceAssembly">Where the service's embedded <c>Migrations/*.sql</c> live.</param>
    /// <param name="configureBus">Registers the service's consumers.</param>
    /// <param name="broker">
    /// The broker login when it is not ConnectionStrings:RabbitMq: a node gets its own at enrollment and holds no
    /// service credential.
    /// </param>
    public static WebApplicationBuilder AddPlatformDefaults(
        this WebApplicationBuilder builder,
        string service,
        Assembly serviceAssembly,
        Action<IBusRegistrationConfigurator>? configureBus = null,
        BrokerLogin? broker = null)
    {
        builder.Logging.AddPlatformLogging();
        builder.Services.AddOpenTelemetry().ConfigureResource(r => r.AddService(service, serviceInstanceId: builder.Configuration["Health:InstanceId"]));
        builder.Services.AddPlatformTracing(builder.Configuration, service);
        builder.Services.AddPlatformMetrics(builder.Configuration);

        builder.Services.AddProblemDetails(o => o.CustomizeProblemDetails = Problems.OwnFrameworkProblems);
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.Strict);

        var health = builder.Services.AddHealthChecks();
        var healthOptions = builder.Configuration.GetSection(HealthOptions.SectionName).Get<HealthOptions>() ?? new HealthOptions();
        builder.Services.AddSingleton(new ServiceName(service, healthOptions.InstanceId));

        // The database comes first: its migrator is a hosted service that must finish before the bus starts
        // consuming, and hosted services start in registration order.
        var postgres = builder.Configuration.GetConnectionString("Postgres");
        if (!string.IsNullOrWhiteSpace(postgres))
        {
            builder.Services.AddPlatformDatabase(service, postgres, serviceAssembly);
            health.AddCheck<DatabaseHealthCheck>("postgres", tags: ["ready"]);
            builder.Services.AddPlatformOutbox();
            builder.Services.AddDatabaseGauge("platform.outbox.unsent", "{message}", "Messages written to the outbox and not yet confirmed by the broker",
                "select count(*) as value from outbox where sent_at is null");
        }

        var rabbitMqOptions = builder.Configuration.GetSection(RabbitMqOptions.SectionName).Get<RabbitMqOptions>();
        builder.Services.AddOptions<RabbitMqOptions>().BindConfiguration(RabbitMqOptions.SectionName);
        if (broker is null)
            builder.Services.AddPlatformBus(service, builder.Configuration.GetConnectionString("RabbitMq"), configureBus, rabbitMqOptions);
        else
            builder.Services.AddPlatformBus(service, broker, configureBus, rabbitMqOptions);
        return builder;
    }

    /// <summary>JSON lines on the console, UTC, framework chatter only from warnings up; also for what a service logs before its host exists.</summary>
    public static ILoggingBuilder AddPlatformLogging(this ILoggingBuilder logging)
    {
        logging.ClearProviders();
        // Every line written inside a span names its trace and span (the scope's TraceId, SpanId, ParentId).
        logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId | ActivityTrackingOptions.ParentId);
        logging.AddJsonConsole(o =>
        {
            o.IncludeScopes = true;
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
        });
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        logging.AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks", LogLevel.Warning);
        logging.AddFilter("System.Net.Http.HttpClient", LogLevel.Warning);
        logging.AddFilter("Microsoft.AspNetCore.DataProtection", LogLevel.Error);
        return logging;
    }

    /// <summary>Error handling that never leaks a stack trace, problem bodies for bare status codes, and health.</summary>
    public static WebApplication UsePlatformDefaults(this WebApplication app)
    {
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            // Malformed requests that fail before a handler runs (bad JSON, body too large) are the caller's fault; a
            // database that cannot be reached is a moment's unavailability, to retry.
            StatusCodeSelector = ex => ex is BadHttpRequestException bad ? bad.StatusCode
                : Problems.DatabaseUnavailable(ex) ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status500InternalServerError,
        });
        app.UseStatusCodePages();
        app.MapPlatformMetrics();
        var name = app.Services.GetRequiredService<ServiceName>();
        var writer = HealthIdentity.Writer(name.Service, name.InstanceId);
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = writer });
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = check => check.Tags.Contains("ready"), ResponseWriter = writer });
        return app;
    }
}

/// <summary>Who this process is, for the health endpoints' answer (<see cref="HealthIdentity"/>).</summary>
internal sealed record ServiceName(string Service, string? InstanceId);
