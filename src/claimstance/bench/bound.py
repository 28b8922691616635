"""The bound: what this CPU could do at best, per precision, at the GEMM shapes the model runs.

For each precision the fastest kernel available here (torch, ONNX Runtime) is timed at MiniLM's shapes, so
a measured rate becomes a share of this machine's own ceiling rather than one library's square matmul.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import PreTrainedModel

from claimstance.bench.figures import NO_BF16, Gemm, best_seconds, weighted_gflops
from claimstance.inference.export import quantize_int8


def torch_matmul(gemm: Gemm, dtype: torch.dtype) -> Callable[[], object]:
    """``torch.matmul`` of activations by a weight stored as ``nn.Linear`` stores it (out x in), transposed."""
    x, weight = torch.randn(gemm.m, gemm.k).to(dtype), torch.randn(gemm.n, gemm.k).to(dtype)
    return lambda: torch.matmul(x, weight.t())


def write_matmul_onnx(path: Path, gemm: Gemm) -> None:
    """A one-node ONNX graph, input (m x k) times an initializer weight (k x n), as the exported model's dense layers."""
    weight = onnx.numpy_helper.from_array(np.random.default_rng(0).standard_normal((gemm.k, gemm.n), dtype=np.float32), "w")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["y"])],
        "gemm",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [gemm.m, gemm.k])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [gemm.m, gemm.n])],
        [weight],
    )
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(path))


def ort_matmul(path: Path, gemm: Gemm, threads: int) -> Callable[[], object]:
    """One ONNX Runtime call of the graph at ``path``, with the session options Predictor uses."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((gemm.m, gemm.k), dtype=np.float32)
    return lambda: session.run(None, {"x": x})


def int8_library(path: Path) -> str:
    """The int8 kernel's name from the ops the quantizer wrote (e.g. DynamicQuantizeLinear+MatMulInteger)."""
    ops = [node.op_type for node in onnx.load(str(path)).graph.node if "Quantize" in node.op_type or "Integer" in node.op_type]
    return f"onnxruntime {'+'.join(ops)} (MLAS)"


def gemm_kernels(gemm: Gemm, folder: Path, threads: int, cpu_bf16: bool) -> dict[str, dict[str, Callable[[], object]]]:
    """Every implementation of ``gemm`` available here, by precision then library.

    int8 is the fp32 graph quantized exactly as the export's int8 model is (``quantize_int8``: dynamic,
    per-channel weights), so it runs the kernel that model runs.
    """
    fp32_path, int8_path = folder / f"{gemm.shape}.onnx", folder / f"{gemm.shape}_int8.onnx"
    write_matmul_onnx(fp32_path, gemm)
    quantize_int8(fp32_path, int8_path)
    blas = "MKL" if torch.backends.mkl.is_available() else "BLAS"
    kernels = {
        "fp32": {
            f"torch.matmul ({blas})": torch_matmul(gemm, torch.float32),
            "onnxruntime MatMul (MLAS)": ort_matmul(fp32_path, gemm, threads),
        },
        "int8": {int8_library(int8_path): ort_matmul(int8_path, gemm, threads)},
    }
    if cpu_bf16:
        kernels["bf16"] = {"torch.matmul (oneDNN)": torch_matmul(gemm, torch.bfloat16)}
    return kernels


def precision_peaks(gemms: Sequence[Gemm], threads: int, seconds: float, cpu_bf16: bool) -> dict:
    """For each precision: each library's GFLOP/s at each shape, the fastest, and the rate one forward's GEMMs sustain."""
    measured: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="claimstance-gemm-") as tmp:
        for gemm in gemms:
            for precision, libraries in gemm_kernels(gemm, Path(tmp), threads, cpu_bf16).items():
                rates = {name: gemm.flops / best_seconds(fn, seconds) / 1e9 for name, fn in libraries.items()}
                measured.setdefault(precision, []).append(rates)
    peaks: dict[str, dict] = {}
    for precision in ("fp32", "bf16", "int8"):
        if precision not in measured:
            peaks[precision] = {"skipped": NO_BF16}
            continue
        shapes = [
            {
                "name": g.name,
                "shape": g.shape,
                "count": g.count,
                "library": max(r, key=r.get),
                "gflops": max(r.values()),
                "by_library": r,
            }
            for g, r in zip(gemms, measured[precision], strict=True)
        ]
        peaks[precision] = {"gflops": weighted_gflops(gemms, [s["gflops"] for s in shapes]), "shapes": shapes}
    return peaks


def flops_per_token(model: PreTrainedModel, tokens: int, training: bool, batch: int = 8) -> float:
    """FLOPs the model spends per token on sentences of ``tokens`` tokens (forward, or forward and backward).

    Counted with eager attention: torch's counter does not see the matmuls inside CPU SDPA.
    """
    model.set_attn_implementation("eager")
    ids = torch.randint(1000, 2000, (batch, tokens))
    labels = torch.zeros(batch, dtype=torch.long)
    model.train(training)
    with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(training):
        output = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
        if training:
            output.loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / (batch * tokens)
