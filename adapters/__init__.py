"""Framework glue for relu_probe, shipped as ``relu_probe.adapters`` and imported lazily:
functional-ReLU capture, PyTorch Lightning and Hugging Face callbacks, torch.distributed."""
