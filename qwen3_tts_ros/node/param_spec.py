"""A parameter's specification (name, default, description, when it applies, range or choices) and its ROS
descriptor; the table of them is params.py (playback's: playback_params.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

from qwen3_tts_ros.engine.types import SAMPLING_RULES
from qwen3_tts_ros.node.settings import MODEL_DEFAULT_INT, SAMPLING_PREFIX


@dataclass(frozen=True)
class Spec:
    name: str
    default: Any
    description: str
    applied_at: str  # "configure" | "utterance"
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None

    def descriptor(self) -> ParameterDescriptor:
        types = {
            bool: ParameterType.PARAMETER_BOOL,
            int: ParameterType.PARAMETER_INTEGER,
            float: ParameterType.PARAMETER_DOUBLE,
            str: ParameterType.PARAMETER_STRING,
            tuple: ParameterType.PARAMETER_INTEGER_ARRAY,  # (only integer arrays are declared)
        }
        constraints = []
        if self.choices is not None:
            constraints.append("one of " + ", ".join(repr(c) for c in self.choices))
        constraints.append(
            "applied at configure; changes refused while configured (cleanup first)"
            if self.applied_at == "configure"
            else "applies from the next utterance"
        )
        if self.name.startswith(SAMPLING_PREFIX):
            rule = SAMPLING_RULES[self.name[len(SAMPLING_PREFIX) :]]
            if rule.kind is not bool:
                default = ".nan" if rule.kind is float else str(MODEL_DEFAULT_INT)
                constraints.insert(0, f"{rule.describe()}, or {default}: the model's default")
        d = ParameterDescriptor(
            name=self.name,
            type=types[type(self.default)],
            description=self.description,
            additional_constraints="; ".join(constraints),
        )
        if self.int_range is not None:
            d.integer_range = [IntegerRange(from_value=self.int_range[0], to_value=self.int_range[1], step=1)]
        if self.float_range is not None:
            d.floating_point_range = [
                FloatingPointRange(from_value=self.float_range[0], to_value=self.float_range[1], step=0.0)
            ]
        return d
