"""The eval harness (scoring, reports), metrics shared by every domain, the temperature sweep,
guided-vs-unguided comparison, model-inspection pages and the benchmark."""
