// Each test class starts a whole network of processes; on a two-core machine they run one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
