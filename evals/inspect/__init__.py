"""Model-inspection pages: the viz page, the neuron search and the run report (Jinja2 templates)."""
