"""Whether ONNX Runtime's int8 matrix products are exact on this CPU, asked of ONNX Runtime itself.

On x86 CPUs without VNNI (AVX2 only, as in many laptops; AVX-512 without VNNI), ONNX Runtime's fast
u8 x s8 kernels add each pair of products in 16 bits, which saturates: the default model's tokens
were wrecked by it (in an emulated AVX2-only CPU, real faces scored 0.83-0.99 fake). Its option
``session.x64quantprecision`` makes those CPUs use exact u8 x u8 products, but it also takes the
VNNI and AMX kernels away from the CPUs that compute exactly anyway (measured on an AMX CPU: 76 ms a
face without it, 238 ms with it). So the engine sets it only where :func:`int8_products_saturate`
finds the saturation: one tiny product whose pairs overflow 16 bits, run once a process. This
module imports no torch, so that the check runs quickly even under an emulator.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

logger = logging.getLogger(__name__)

EXACT_INT8_OPTION = "session.x64quantprecision"
_ROWS, _DEPTH, _COLUMNS = 4, 64, 16


@functools.lru_cache(maxsize=1)
def int8_products_saturate() -> bool:
    """True when ONNX Runtime's default u8 x s8 matrix product is not exact on this CPU, or when
    that cannot be told (then the exact products are the safe choice: slower, never wrong)."""
    try:
        return _probe()
    except Exception:  # an ONNX Runtime or onnx unlike the ones this was written for
        logger.debug("The int8 probe failed; asking for exact int8 products", exc_info=True)
        return True


def _probe() -> bool:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.full((_DEPTH, _COLUMNS), 127, np.int8), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])],
        "int8_probe",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [_ROWS, _DEPTH])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [_ROWS, _COLUMNS])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # read by every ONNX Runtime this project supports
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (product,) = session.run(None, {"a": np.full((_ROWS, _DEPTH), 255, np.uint8)})
    return not np.array_equal(product, np.full((_ROWS, _COLUMNS), _DEPTH * 255 * 127))
