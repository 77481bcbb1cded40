// The end-to-end class starts a whole network of processes; on a two-core machine tests run one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
