"""`edge-slm tune`: LoRA fine-tuning of the site's small model, shipped as a llama.cpp GGUF adapter.

Data generation, rubric and install are pure Python; training and adapter export import torch, transformers
and peft (the `[tune]` extra) lazily. The daemon never imports anything from here but the adapter lookup
(`edge_slm.tune.adapters.shipped_adapter`), which needs no torch.
"""
