using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Platform.Storage.Blobs;

namespace Platform.Storage.Tests.Blobs;

/// <summary>
/// The storage service's Kestrel (<see cref="UploadReceiving.ReceiveUploadsInLargeBlocks"/>) receives an upload in
/// blocks of up to 64 KiB, not Kestrel's 4 KiB: a real Kestrel on a real socket, the body read as it arrives.
/// </summary>
public sealed class UploadReceivingTests
{
    [Fact]
    public async Task An_upload_arrives_in_blocks_larger_than_kestrels_4_KiB()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.ReceiveUploadsInLargeBlocks();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var app = builder.Build();
        var largest = 0;
        long received = 0;
        app.MapPost("/", async (HttpRequest request) =>
        {
            while (true)
            {
                var read = await request.BodyReader.ReadAsync();
                foreach (var segment in read.Buffer)
                {
                    largest = Math.Max(largest, segment.Length);
                    received += segment.Length;
                }
                request.BodyReader.AdvanceTo(read.Buffer.End);
                if (read.IsCompleted)
                    return Results.NoContent();
            }
        });
        await app.StartAsync();
        try
        {
            using var http = new HttpClient();
            var body = new byte[8 << 20];
            new Random(20).NextBytes(body);
            Console.WriteLine("seed 20");
            using var response = await http.PostAsync(new Uri(new Uri(app.Urls.Single()), "/"), new ByteArrayContent(body));
            response.EnsureSuccessStatusCode();

            Assert.Equal(body.Length, received);
            Assert.InRange(largest, 4096 + 1, LargeBlockPoolFactory.BlockSize);
        }
        finally
        {
            await app.StopAsync();
        }
    }

    [Fact]
    public void A_returned_block_is_rented_again_and_one_returned_twice_is_kept_once()
    {
        using var pool = new LargeBlockPool();
        var first = pool.Rent();
        Assert.Equal(LargeBlockPoolFactory.BlockSize, first.Memory.Length);
        Assert.True(MemoryMarshal.TryGetArray<byte>(first.Memory, out var firstArray));
        first.Dispose();
        first.Dispose();

        using var second = pool.Rent();
        using var third = pool.Rent();
        Assert.True(MemoryMarshal.TryGetArray<byte>(second.Memory, out var secondArray));
        Assert.Same(firstArray.Array, secondArray.Array);
        Assert.Equal(2, pool.BlocksMade);
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(LargeBlockPoolFactory.BlockSize + 1));
    }
}
