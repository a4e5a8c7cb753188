"""Data-parallel training on the frameworks' own engines, from one machine to many.

A workload with a ``[distributed]`` table (or any workload run with ``--workers N``) becomes a
*distributed cell*. The parent never imports a framework: :mod:`fwbench.distributed.launch` starts

- PyTorch ranks through ``torchrun`` (``DistributedDataParallel``; gloo on CPU, nccl on CUDA), or
- TensorFlow ranks as N processes with ``TF_CONFIG`` (``MultiWorkerMirroredStrategy``),

each running :mod:`fwbench.distributed.rank`. Every cell runs a 1-worker run and an N-worker run in the
same invocation; :mod:`fwbench.distributed.aggregate` turns the ranks' records into one cell (world size,
backend, per-rank and global throughput, slowest-rank step time, scaling efficiency, loss following).

Modules: ``config`` (options, engines, ports), ``launch`` (processes, faults), ``rendezvous`` (TF_CONFIG
across nodes), ``rank`` (the per-rank driver), ``torch_rank`` / ``tf_rank`` (engines), ``aggregate`` (pure).
"""
