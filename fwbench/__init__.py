"""fwbench: run the same deep-learning workloads through PyTorch, TensorFlow and Keras, and compare them fairly.

The parent process never imports a framework: runners load only inside worker processes
(``fwbench.worker``), one per (workload, runner, device, repeat) cell.
"""

__version__ = "0.1.0"
