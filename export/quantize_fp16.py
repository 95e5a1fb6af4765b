"""The FP16 build of an artifact: the network's nodes in float16, pre/post-processing in float32.

Used by ``export.quantize.build_fp16``; the graph surgery that makes onnxruntime's converter output
pass the ONNX checker and keep the float32 parts exact lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

NETWORK_SCOPE = "/model/"  # node-name prefix of the traced INPFormer (ExportGraph.model)


def write_fp16(fp32_path: Path, out_path: Path, keep_float_patterns: Sequence[str] = ()) -> None:
    """FP16 weights and activations for the network's nodes; pre/post-processing stays float32.

    onnxruntime's converter inserts a Cast at every float32/float16 boundary, once per consumer, and
    appends them at the end of the node list; the duplicates are dropped and the graph re-sorted so
    the result passes the ONNX checker (SSA, topological order).
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    fp32 = onnx.load(str(fp32_path))
    keep_float = float_node_names(fp32.graph, keep_float_patterns)
    _unshare_float_initializers(fp32.graph, set(keep_float))
    model = convert_float_to_float16(fp32, keep_io_types=True, node_block_list=keep_float)
    _drop_duplicate_nodes(model.graph)
    _skip_float16_round_trips(model.graph, set(keep_float))
    OnnxModel.graph_topological_sort(model.graph, is_deterministic=True)
    onnx.save(model, str(out_path))


def float_node_names(graph, keep_float_patterns: Sequence[str]) -> list[str]:
    """Nodes that stay float32 in an FP16 build: outside the network scope or matching an exclusion."""
    return [
        node.name
        for node in graph.node
        if not node.name.startswith(NETWORK_SCOPE)
        or any(pattern in node.name for pattern in keep_float_patterns)
    ]


def _unshare_float_initializers(graph, float_nodes: set[str]) -> None:
    """Give float32 nodes their own copy of each float initializer they share with network nodes.

    The exporter stores equal constants once; the converter turns a shared one into float16 and
    casts it back for the float32 readers, which rounds their constants (Gaussian weights, eps).
    """
    from onnx import TensorProto

    shared = {init.name: init for init in graph.initializer if init.data_type == TensorProto.FLOAT}
    network_reads = {name for node in graph.node if node.name not in float_nodes for name in node.input}
    copies = {}
    for node in graph.node:
        if node.name not in float_nodes:
            continue
        for index, name in enumerate(node.input):
            if name in shared and name in network_reads:
                if name not in copies:
                    copies[name] = graph.initializer.add()
                    copies[name].CopyFrom(shared[name])
                    copies[name].name = f"{name}_float32"
                node.input[index] = copies[name].name


def _cast_to(node) -> int | None:
    if node.op_type != "Cast":
        return None
    return next((attribute.i for attribute in node.attribute if attribute.name == "to"), None)


def _skip_float16_round_trips(graph, float_nodes: set[str]) -> None:
    """Wire float32 → float16 → float32 Cast pairs between two float32 nodes straight through.

    The converter wraps each kept-float node in Casts on its own, so a tensor passed from one
    float32 node to the next was rounded to float16 on the way; here it is passed as it was.
    """
    from onnx import TensorProto

    made_by = {output: node for node in graph.node for output in node.output}
    graph_outputs = {value.name for value in graph.output}
    direct = {}
    for node in graph.node:
        first = made_by.get(node.input[0]) if _cast_to(node) == TensorProto.FLOAT else None
        if first is None or _cast_to(first) != TensorProto.FLOAT16:
            continue
        source = made_by.get(first.input[0])
        if source is None or source.name not in float_nodes:
            continue
        if node.output[0] in graph_outputs:  # keep the output's name: the Cast becomes an Identity
            node.op_type, node.input[0] = "Identity", first.input[0]
            del node.attribute[:]
        else:
            direct[node.output[0]] = first.input[0]
    for node in graph.node:
        for index, name in enumerate(node.input):
            node.input[index] = direct.get(name, name)
    _drop_unused_casts(graph)


def _drop_unused_casts(graph) -> None:
    while True:
        used = {name for node in graph.node for name in node.input} | {value.name for value in graph.output}
        unused = [node for node in graph.node if node.op_type == "Cast" and node.output[0] not in used]
        if not unused:
            return
        for node in unused:
            graph.node.remove(node)


def _drop_duplicate_nodes(graph) -> None:
    """Remove byte-identical repeats of a node (same inputs, outputs, attributes)."""
    seen: set[bytes] = set()
    unique = []
    for node in graph.node:
        key = node.SerializeToString(deterministic=True)
        if key not in seen:
            seen.add(key)
            unique.append(node)
    del graph.node[:]
    graph.node.extend(unique)
