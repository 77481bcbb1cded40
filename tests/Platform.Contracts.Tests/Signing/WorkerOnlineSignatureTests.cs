using System.Text;
using Platform.Contracts.Kernels;
using Platform.Contracts.Messages;
using Platform.Contracts.Signing;

namespace Platform.Contracts.Tests.Signing;

public sealed class WorkerOnlineSignatureTests
{
    private static readonly WorkerOnline Announcement = new()
    {
        WorkerId = WorkerId.From("wrk_abc"),
        OperatorAccountId = AccountId.From("acc_op"),
        Region = "local",
        Slots = 1,
        Kernels = [],
        Devices = [],
        GflopsPerKernel = new Dictionary<string, double>(),
        PowerWatts = 1,
        PublicKey = "KEY",
        OccurredAt = new DateTimeOffset(2026, 12, 3, 12, 0, 0, TimeSpan.Zero),
    };

    [Fact]
    public void An_older_nodes_announcement_signs_the_same_lines_as_before_the_kernel_revision()
    {
        Assert.Equal("platform-worker-online-v1\nworker wrk_abc\nat 2026-12-03T12:00:00.0000000Z\noperator acc_op\nkey KEY\n",
            Encoding.UTF8.GetString(WorkerMessageSignature.Payload(Announcement)));
    }

    [Fact]
    public void The_kernel_revision_is_a_signed_last_line()
    {
        Assert.Equal("platform-worker-online-v1\nworker wrk_abc\nat 2026-12-03T12:00:00.0000000Z\noperator acc_op\nkey KEY\nkernel-revision 1\n",
            Encoding.UTF8.GetString(WorkerMessageSignature.Payload(Announcement with { KernelRevision = KernelArithmetic.Reproducible })));
    }
}
