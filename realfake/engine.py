"""CLIP's image tower through ONNX Runtime, on the int8 export the base comes from.

The registry package's ONNX file (see :mod:`realfake.base`) is a dynamically int8-quantised graph:
int8 weights, activations quantised on the fly. ONNX Runtime runs its matrix products in int8 on
every x86 CPU (AVX2, AVX-512 VNNI, AMX), so it needs no native bfloat16 to be fast, where torch on
the dequantised float32 weights is about twice as slow without it. Its tokens differ slightly from
the float32 model's (int8 activations), so a head is trained on the tokens of the engine that serves
it: a model's config names its engine (``backbone_engine``), and train/train.py caches tokens
through that engine.

:func:`build_engine` saves a copy of the graph that also returns the hidden state after every block
(the outputs of the nodes the export names ``/vision_model/encoder/layers.<i>/Add_1``, the
second residual sum of block i), so one run gives every block's tokens, as
``output_hidden_states=True`` does in transformers.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from .cpu import EXACT_INT8_OPTION, int8_products_saturate
from .errors import ModelError

logger = logging.getLogger(__name__)

ENGINE_FILE = "vision_int8_blocks.onnx"
BLOCK_NODE = "/vision_model/encoder/layers.{}/Add_1"
INPUT_NAME = "pixel_values"
OUTPUTS_KEY = "realfake_block_outputs"  # the graph's metadata entry listing the block outputs, in order


def build_engine(onnx_path: Path, target: Path, num_layers: int = 12) -> Path:
    """Save the int8 graph at ``onnx_path`` to ``target`` with every block's hidden state as an output.

    Raises:
        ModelError: the graph has no tensor of that name for some block.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(onnx_path))
    names = block_outputs(model.graph, num_layers)
    existing = {output.name for output in model.graph.output}
    for name in names:
        if name not in existing:
            model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    # ONNX Runtime reads this back without loading the 90 MB graph a second time
    helper.set_model_props(model, {OUTPUTS_KEY: json.dumps(names)})
    partial = target.with_name(target.name + ".partial")
    onnx.save(model, str(partial))
    os.replace(partial, target)  # a file under the final name is always whole
    logger.info("Saved the ONNX Runtime engine with %d block outputs to %s", num_layers, target)
    return target


def block_outputs(graph, num_layers: int) -> list[str]:
    """The names of the tensors holding the hidden state after each block, in order.

    Raises:
        ModelError: some block has no node of the expected name.
    """
    produced = {node.name: node.output[0] for node in graph.node}
    missing = [BLOCK_NODE.format(i) for i in range(num_layers) if BLOCK_NODE.format(i) not in produced]
    if missing:
        raise ModelError(f"The ONNX graph has no node {missing[0]}: not the export realfake knows.")
    return [produced[BLOCK_NODE.format(i)] for i in range(num_layers)]


class OnnxBackbone:
    """An ONNX Runtime session of :func:`build_engine`'s graph, on the CPU."""

    def __init__(self, path: Path, num_layers: int = 12, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - a requirement
            raise ModelError("This model runs on ONNX Runtime: pip install onnxruntime.") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # its warnings about unused initializers are not the user's
        # Its threads would otherwise spin after each run, taking the cores from torch's face
        # detection that comes next (measured: detection twice as slow beside spinning threads).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if int8_products_saturate():  # x86 without VNNI: exact u8 x u8 products (see realfake.cpu)
            options.add_session_config_entry(EXACT_INT8_OPTION, "1")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        stored = self.session.get_modelmeta().custom_metadata_map.get(OUTPUTS_KEY)
        if stored is not None:
            self.outputs = json.loads(stored)
        else:  # an engine built before its graph carried the names
            import onnx

            self.outputs = block_outputs(onnx.load(str(path), load_external_data=False).graph, num_layers)

    def hidden_states(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """The hidden state after each block, (batch, tokens, hidden) float32 each.

        One image per run: the graph quantises each activation with one scale for the whole input
        tensor, so in a batch a face's tokens would depend on the other faces in it.
        """
        pixels = np.ascontiguousarray(pixel_values.detach().cpu().float().numpy())
        runs = [self.session.run(self.outputs, {INPUT_NAME: pixels[i : i + 1]}) for i in range(len(pixels))]
        return [torch.from_numpy(np.concatenate(states)) for states in zip(*runs)]
