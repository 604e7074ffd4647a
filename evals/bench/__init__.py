"""`gen bench`: training, sampling and eval throughput against minimal reference loops."""
