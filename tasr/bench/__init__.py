"""The benchmarks behind `tasr bench ...`: each prints a table beside the peers measured in the same run."""
