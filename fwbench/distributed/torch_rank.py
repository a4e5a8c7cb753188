"""PyTorch rank: ``DistributedDataParallel`` over a ``torch.distributed`` process group set up by torchrun.

torchrun provides ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``GROUP_RANK`` (the node), ``MASTER_ADDR`` and
``MASTER_PORT``; ``init_process_group`` reads them (``env://``). Backend: gloo on CPU, nccl on CUDA (one GPU
per local rank). DDP averages gradients over ranks during ``backward()``, so a step's time includes its
all-reduce. The model is the same ``torch.fx.GraphModule`` the ``torch`` runner builds from the shared weights.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from fwbench.data import Batch
from fwbench.distributed.rank import RankEngine
from fwbench.errors import CellSkipped
from fwbench.layout import nhwc_to_nchw
from fwbench.runners.torch_runner import build_module, cross_entropy, make_optimizer
from fwbench.weights import Params
from fwbench.workload_spec import WorkloadSpec

_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}


class TorchDDP(RankEngine):
    def setup(self) -> None:
        self.rank = int(os.environ["RANK"])
        self.world_size = int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ["LOCAL_RANK"])
        self.node_rank = int(os.environ.get("GROUP_RANK", "0"))
        torch.set_num_threads(self.job.options.threads)
        if self.device == "cuda":
            if torch.cuda.device_count() <= self.local_rank:
                raise CellSkipped(f"local rank {self.local_rank} needs GPU {self.local_rank}; "
                                  f"torch sees {torch.cuda.device_count()}")
            torch.cuda.set_device(self.local_rank)
            self.dev, self.backend = torch.device("cuda", self.local_rank), "nccl"
            torch.backends.cuda.matmul.allow_tf32 = self.job.options.tf32
            torch.backends.cudnn.allow_tf32 = self.job.options.tf32
        elif self.device == "cpu":
            self.dev, self.backend = torch.device("cpu"), "gloo"
        else:
            raise CellSkipped(f"DistributedDataParallel runs on cpu and cuda, not {self.device}")
        timeout = datetime.timedelta(seconds=float(self.run.get("collective_timeout_s", 600)))
        dist.init_process_group(self.backend, timeout=timeout,
                                device_id=self.dev if self.device == "cuda" else None)

    def build(self, spec: WorkloadSpec, params: Params) -> None:
        model = build_module(spec, params).to(self.dev)
        model.train(True)
        self.model = DistributedDataParallel(model, device_ids=[self.local_rank] if self.device == "cuda" else None)
        self.opt = make_optimizer(spec, self.model.parameters())

    def put(self, batch: Batch) -> Any:
        x, y = batch
        if x.ndim == 4:
            x = nhwc_to_nchw(x)
        return torch.from_numpy(x).to(self.dev), torch.from_numpy(y).to(self.dev)

    def train_step(self, batch: Any) -> Any:
        x, y = batch
        self.opt.zero_grad(set_to_none=True)
        loss = cross_entropy(self.model(x), y)  # per-token logits: the mean over batch and time
        loss.backward()  # DDP all-reduces (averages) the gradients here
        self.opt.step()
        return loss.detach()

    def value(self, loss: Any) -> float:
        return float(loss.item())

    def all_reduce(self, values: list[float], op: str) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.dev)
        dist.all_reduce(t, op=_OPS[op])
        return t.cpu().tolist()

    def gather(self, row: list[float]) -> list[list[float]]:
        t = torch.tensor(row, dtype=torch.float64, device=self.dev)
        out = [torch.zeros_like(t) for _ in range(self.world_size)]
        dist.all_gather(out, t)
        return [o.cpu().tolist() for o in out]

    def barrier(self) -> None:
        dist.barrier()

    def info(self) -> dict[str, Any]:
        return {"backend": dist.get_backend(), "engine": "torch.nn.parallel.DistributedDataParallel",
                "settings": {"intra_op_threads": torch.get_num_threads(), "dtype": "float32", "layout": "NCHW",
                             "torch": torch.__version__}}

    def close(self) -> None:
        dist.destroy_process_group()


class TorchDDPCompile(TorchDDP):
    """``torch.compile`` of the DDP model: TorchDynamo's DDPOptimizer splits the graph at DDP's gradient
    buckets so that the all-reduce still overlaps the backward pass; the first step pays compilation."""

    def build(self, spec: WorkloadSpec, params: Params) -> None:
        super().build(spec, params)
        self.model = torch.compile(self.model)

    def info(self) -> dict[str, Any]:
        out = super().info()
        out["settings"] = {**out["settings"], "compiled": True, "compile_backend": "inductor"}
        return out
