"""GenICam node writes on an open camera: the profile, then the station's trigger, each read back.

``apply_writes(node_map, writes, camera, origin)`` writes the nodes in order. Before each write the
node is looked up and its type, access and allowed values checked, so a problem is a ``NodeError``
naming the node, the camera, where the write came from (the profile file, or the station's trigger
keys) and what the node allows: an unknown node (with the nearest names), a read-only one, a value
out of range or not in the enumeration. After the write the node is read back and compared (floats
within the node's increment or 0.5 %), unless the write says ``verify: false``.

``trigger_writes`` turns the station's trigger settings into node writes for this camera (SFNC:
TriggerSelector, TriggerMode, TriggerSource, TriggerActivation, TriggerDelay), leaving out nodes
the camera does not have where that changes nothing. ``read_node`` reads one node, None when it is
not there; ``first_line`` shortens a GenApi / GenTL message for an error. ``node_map`` is a GenApi
node map as harvesters gives it (``ia.remote_device.node_map``); nothing here imports harvesters.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

from edge.camera.genicam_settings import FREE_RUN, SOFTWARE, TriggerSettings
from edge.camera.profile import NodeWrite
from edge.errors import SourceError

# GenApi principal interface types (EInterfaceType) and access modes (EAccessMode).
INTEGER, BOOLEAN, COMMAND, FLOAT, STRING, ENUMERATION = 2, 3, 4, 5, 6, 9
KIND_NAMES = {INTEGER: "integer", BOOLEAN: "boolean", COMMAND: "command", FLOAT: "float", STRING: "string",
              ENUMERATION: "enumeration"}  # fmt: skip
ACCESS_NAMES = {
    0: "not implemented",
    1: "not available now",
    2: "write-only",
    3: "read-only",
    4: "read-write",
}
WRITABLE = (2, 4)
FLOAT_RELATIVE_TOLERANCE = 0.005


class NodeError(SourceError):
    """A node write the camera refuses: unknown, read-only, out of range, or not read back."""


@dataclass(frozen=True)
class AppliedWrite:
    node: str
    written: Any
    read_back: Any  # None when not verified (verify: false, a command, a write-only node)


def apply_writes(
    node_map: Any, writes: tuple[NodeWrite, ...], camera: str, origin: str
) -> list[AppliedWrite]:
    """Write ``writes`` in order; a ``NodeError`` on the first one the camera refuses."""
    return [_apply(node_map, write, camera, origin) for write in writes]


def _apply(node_map: Any, write: NodeWrite, camera: str, origin: str) -> AppliedWrite:
    node = find_node(node_map, write.node, camera, origin)
    kind = node.node.principal_interface_type
    fail = _failer(write, camera, origin)
    access = node.get_access_mode()
    if access not in WRITABLE:
        raise fail(f"is {ACCESS_NAMES.get(access, access)}", f"a writable node; current value {_read(node)!r}",
                   "some nodes are locked while the camera streams or depend on another node written first")  # fmt: skip
    value = _checked_value(node, kind, write.value, fail)
    if kind == COMMAND:
        node.execute()
        return AppliedWrite(write.node, write.value, None)
    try:
        node.value = value
    except Exception as exc:  # noqa: BLE001 - GenApi raises its own classes; the message says what it refused
        raise fail(f"refused {value!r}: {first_line(exc)}", allowed_values(node)) from exc
    if not write.verify or access == 2:
        return AppliedWrite(write.node, value, None)
    read_back = _read(node)
    if not values_match(kind, value, read_back, _increment(node)):
        raise fail(f"was written {value!r} but reads back {read_back!r}", allowed_values(node),
                   "set the value the camera keeps, or verify: false on this node if it rounds or "
                   "ignores the write on purpose")  # fmt: skip
    return AppliedWrite(write.node, value, read_back)


def find_node(node_map: Any, name: str, camera: str, origin: str) -> Any:
    """The node ``name`` of ``node_map``; a ``NodeError`` with the nearest names when it has none."""
    if node_map.has_node(name):
        return node_map.get_node(name)
    names = [node.node.name for node in node_map.nodes]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f"; nearest: {', '.join(close)}" if close else ""
    raise NodeError(
        f"camera {camera}: {origin}: node {name} does not exist on this camera{hint}",
        fix="use the camera's node name (inp-edge cameras lists the camera; its manual lists the nodes), "
        "or remove the write",
    )


def _failer(write: NodeWrite, camera: str, origin: str):
    def fail(problem: str, allowed: str, fix: str = "") -> NodeError:
        message = f"camera {camera}: {origin}: node {write.node} {problem} (allowed: {allowed})"
        return NodeError(message, fix=fix or f"change the value of {write.node} in {origin}")

    return fail


def _checked_value(node: Any, kind: int, value: Any, fail) -> Any:
    """``value`` converted for the node, or the NodeError that says why it cannot be written."""
    if kind == ENUMERATION:
        if isinstance(value, bool):
            raise fail(f"is an enumeration and YAML read the value as {value}", allowed_values(node),
                       "quote the entry name in the YAML, e.g. 'Off' or 'On'")  # fmt: skip
        entries = tuple(node.symbolics)
        if str(value) not in entries:
            raise fail(f"has no entry {value!r} available", allowed_values(node))
        return str(value)
    if kind in (INTEGER, FLOAT):
        return _checked_number(node, kind, value, fail)
    if kind == BOOLEAN:
        if not isinstance(value, bool):
            raise fail(f"takes true or false, not {value!r}", "true, false")
        return value
    if kind == COMMAND:
        if value not in (True, "execute"):
            raise fail(f"is a command; {value!r} is not a way to run it", "execute (or true)")
        return value
    if kind == STRING:
        return str(value)
    raise fail(f"is a {KIND_NAMES.get(kind, kind)} node, which a profile cannot write", "a value node")


def _checked_number(node: Any, kind: int, value: Any, fail) -> Any:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or (kind == INTEGER and not float(value).is_integer()):
        raise fail(
            f"takes {'an integer' if kind == INTEGER else 'a number'}, not {value!r}", allowed_values(node)
        )
    value = int(value) if kind == INTEGER else float(value)
    low, high = node.min, node.max
    if not low <= value <= high:
        raise fail(f"= {value} is out of range", allowed_values(node))
    increment = _increment(node)
    if kind == INTEGER and increment and (value - low) % increment:
        raise fail(f"= {value} is not on the node's steps", allowed_values(node))
    return value


def allowed_values(node: Any) -> str:
    """What the node accepts, in words (enumeration entries, range and step)."""
    kind = node.node.principal_interface_type
    try:
        if kind == ENUMERATION:
            return ", ".join(node.symbolics)
        if kind in (INTEGER, FLOAT):
            step = _increment(node)
            steps = f" in steps of {step:g}" if step else ""
            return f"{node.min:g}..{node.max:g}{steps}"
    except Exception:  # noqa: BLE001 - describing a node must not hide the error being reported
        return "unknown (the node cannot be read now)"
    return {BOOLEAN: "true, false", COMMAND: "execute", STRING: "text"}.get(kind, KIND_NAMES.get(kind, "?"))


def _increment(node: Any) -> float:
    kind = node.node.principal_interface_type
    try:
        if kind == INTEGER:
            return float(node.inc)
        if kind == FLOAT and node.has_inc():
            return float(node.inc)
    except Exception:  # noqa: BLE001 - a node without a readable increment has none
        return 0.0
    return 0.0


def _read(node: Any) -> Any:
    try:
        return node.value
    except Exception as exc:  # noqa: BLE001 - reported as the value read
        return f"<unreadable: {first_line(exc)}>"


def values_match(kind: int, written: Any, read_back: Any, increment: float = 0.0) -> bool:
    """Whether a read-back value is the one written (floats: within the step or 0.5 %)."""
    if kind == FLOAT and isinstance(read_back, int | float):
        tolerance = max(increment, abs(float(written)) * FLOAT_RELATIVE_TOLERANCE, 1e-9)
        return math.isclose(float(written), float(read_back), abs_tol=tolerance)
    return written == read_back


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (GenTL's run long), or its class name when it has none."""
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def read_node(node_map: Any, name: str, attribute: str = "value") -> Any:
    """``attribute`` of node ``name`` (its value by default); None when there is no such node or it
    cannot be read now."""
    try:
        return getattr(node_map.get_node(name), attribute) if node_map.has_node(name) else None
    except Exception:  # noqa: BLE001 - GenApi raises its own classes; an unreadable node reads as unknown
        return None


def trigger_writes(trigger: TriggerSettings, node_map: Any, camera: str) -> tuple[NodeWrite, ...]:
    """The node writes that put this camera in ``trigger.mode`` (SFNC names)."""
    has = node_map.has_node
    if trigger.mode == FREE_RUN:
        if not has("TriggerMode"):
            return ()
        return (*_selector(trigger, node_map), NodeWrite("TriggerMode", "Off"))
    needed = (
        ("TriggerMode", "TriggerSoftware") if trigger.mode == SOFTWARE else ("TriggerMode", "TriggerSource")
    )
    missing = [name for name in needed if not has(name)]
    if missing:
        raise NodeError(
            f"camera {camera}: source.genicam.trigger.mode {trigger.mode}: the camera has no "
            f"{' or '.join(missing)} node, so it cannot be triggered that way",
            fix="use trigger mode free-run, or a camera with that trigger (inp-edge cameras says which have one)",
        )
    writes = [*_selector(trigger, node_map), NodeWrite("TriggerMode", "Off")]
    if trigger.mode == SOFTWARE:
        writes += [NodeWrite("TriggerSource", "Software")] if has("TriggerSource") else []
    else:
        writes += [NodeWrite("TriggerSource", trigger.source)]
        writes += _optional(
            node_map, camera, "TriggerActivation", trigger.activation, trigger.activation != "RisingEdge"
        )
        writes += _delay(node_map, camera, trigger.delay_us)
    return (*writes, NodeWrite("TriggerMode", "On"))


def _selector(trigger: TriggerSettings, node_map: Any) -> list[NodeWrite]:
    if not node_map.has_node("TriggerSelector"):
        return []
    return [NodeWrite("TriggerSelector", trigger.selector)]


def _optional(node_map: Any, camera: str, name: str, value: Any, needed: bool) -> list[NodeWrite]:
    if node_map.has_node(name):
        return [NodeWrite(name, value)]
    if needed:
        raise NodeError(
            f"camera {camera}: source.genicam.trigger: the camera has no {name} node, so {value} cannot be set",
            fix=f"remove the setting (the camera's default applies) or use a camera with {name}",
        )
    return []


def _delay(node_map: Any, camera: str, delay_us: float) -> list[NodeWrite]:
    for name in ("TriggerDelay", "TriggerDelayAbs"):  # SFNC; older GigE cameras name it ...Abs
        if node_map.has_node(name):
            return [NodeWrite(name, float(delay_us))]
    return _optional(node_map, camera, "TriggerDelay", delay_us, delay_us > 0)
