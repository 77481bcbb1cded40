using Platform.Contracts.Api;

namespace Platform.Client;

/// <summary>
/// What the SDK adds to the API's own types (Platform.Contracts.Api, the types the gateway answers with): figures
/// derived from what the gateway sent, never sent back.
/// </summary>
public static class ApiTypeExtensions
{
    extension(JobView job)
    {
        /// <summary>The job is completed, failed, cancelled or rejected: it will not change any more.</summary>
        public bool IsFinished => JobStatuses.IsTerminal(job.Status);
    }

    extension(JobBatchView batch)
    {
        /// <summary>How many of the batch's jobs are in <paramref name="status"/> (0 for a status the gateway left out).</summary>
        public int Count(string status) => batch.Counts.GetValueOrDefault(status);

        /// <summary>Jobs that will not change any more: completed, failed, cancelled or rejected.</summary>
        public int Done => batch.Counts.Where(c => JobStatuses.IsTerminal(c.Key)).Sum(c => c.Value);
    }

    extension(EarningsResponse earnings)
    {
        public decimal Total => earnings.Paid + earnings.Minted;
    }

    extension(WorkerEarnings worker)
    {
        public decimal Earned => worker.Paid + worker.Minted;
    }

    extension(DailyEarnings day)
    {
        public decimal Earned => day.Paid + day.Minted;
    }
}
