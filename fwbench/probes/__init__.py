"""Capability probes: small deterministic checks of what a framework lets you do, each run in a worker.

- ``debug-value``: can the training step read a concrete intermediate value (eager yes; graph mode?);
- ``shape-error``: does a deliberate shape error name the offending layer and the shapes;
- ``shape-change``: what a changed input shape costs (retraces / recompiles and their time);
- ``export-*``: torch.export, ONNX (+ ONNX Runtime), TorchScript, TF SavedModel, TFLite (+ interpreter),
  tf2onnx where installed: success, export time, artifact size, and whether the exported model
  reproduces the original outputs.

:mod:`.catalog` lists them (metadata only, no framework import); :mod:`.worker` runs one in a fresh
process; :mod:`.run` plans and records them; the implementations live in one module per framework.
"""
