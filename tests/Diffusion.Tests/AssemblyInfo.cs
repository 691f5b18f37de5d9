// Tests share libtorch's thread pool and measure process memory: run them one at a time.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
