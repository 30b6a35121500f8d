"""Hooks that read or edit the scored Linear layers of a diffusion pipeline.

- ``hook_variants``: the one table mapping ``--hook_module`` to the layers it selects (torch-free: the
  config checks read its names before torch is imported).
- ``trace``: a context manager that registers hooks, keys each call by (UNet call index, layer
  name) and always removes the hooks.
- ``norm_recorder``: accumulates row-normalised squared activations per (step, layer).
- ``step_pruner``: applies per-step masks during generation (step 2 of the method).
"""
