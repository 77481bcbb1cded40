using System.Net.Http.Json;
using Platform.Contracts.Api;
using Platform.Contracts.Kernels;
using Platform.Testing;

namespace Platform.EndToEnd.Tests;

/// <summary>GET /v1/kernels: the catalogue, served by the gateway to anyone, is the one the network's workers run.</summary>
public sealed class KernelsTests(Network network) : IClassFixture<Network>
{
    [Fact]
    public async Task The_served_catalogue_is_the_one_the_workers_run_with_every_parameter_and_shape_rule()
    {
        using var anonymous = network.Client(null);
        using var response = await anonymous.GetAsync("/v1/kernels");
        response.EnsureSuccessStatusCode();
        var served = (await response.Content.ReadFromJsonAsync<List<KernelView>>(Api.Json))!;

        Assert.Equal(KernelCatalog.Names, served.Select(k => k.Name));
        foreach (var (view, definition) in served.Zip(KernelCatalog.Definitions))
        {
            Assert.Equal((definition.Description, definition.Version, definition.Shapes), (view.Description, view.Version, view.Shapes));
            Assert.NotEmpty(view.Shapes);
            Assert.Equal(definition.Inputs, view.Inputs);
            Assert.Equal(definition.Outputs, view.Outputs);
            Assert.Equal(definition.Parameters.Select(p => (p.Name, p.Default, p.Choices is null ? p.Min : (double?)null, p.Choices is null ? p.Max : (double?)null)),
                view.Params.Select(p => (p.Name, p.Default, p.Min, p.Max)));
            Assert.All(view.Params, p => Assert.Equal(p.Kind == "choice", p.Choices is { Count: > 0 }));
        }
        // The network's worker offers every kernel the gateway serves, and no other.
        var workers = await Eventually.UntilAsync(async () => (await anonymous.GetFromJsonAsync<List<WorkerView>>("/v1/workers", Api.Json))!,
            list => list.Any(w => w.Online), TimeSpan.FromSeconds(30), "a worker online");
        Assert.All(workers.Where(w => w.Online), w => Assert.Equal(served.Select(k => k.Name).Order(), w.Kernels.Order()));
    }
}
