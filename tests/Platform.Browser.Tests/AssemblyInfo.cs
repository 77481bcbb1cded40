// The fixture starts a whole network of processes and a browser; on a two-core machine one test runs at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
