"""Build Gradio controls from pydantic field metadata, so every default and range lives once (in the model)."""

from __future__ import annotations

from enum import Enum
from typing import Any

import gradio as gr
from pydantic import BaseModel


def bounds(model: type[BaseModel], name: str, step: float = 1) -> tuple[float | None, float | None]:
    """The (min, max) a control may offer, from the field's ge/le (or gt/lt, one step inside) metadata."""
    lo = hi = None
    for m in model.model_fields[name].metadata:
        lo = getattr(m, "ge", lo)
        hi = getattr(m, "le", hi)
        if getattr(m, "gt", None) is not None:
            lo = m.gt + step
        if getattr(m, "lt", None) is not None:
            hi = m.lt - step
    return lo, hi


def default(model: type[BaseModel], name: str) -> Any:
    field = model.model_fields[name]
    value = field.get_default(call_default_factory=True)
    return value.value if isinstance(value, Enum) else value


def label_of(model: type[BaseModel], name: str, fallback: str | None = None) -> str:
    return fallback or name.replace("_", " ").capitalize()


def info_of(model: type[BaseModel], name: str, label: str | None = None) -> str | None:
    """The field description as help text, unless it only repeats the label."""
    text = model.model_fields[name].description
    return None if text is None or (label and text.strip().lower() == label.strip().lower()) else text


def slider(model: type[BaseModel], name: str, label: str | None = None, *, step: float | None = None,
           value: Any = None, **kw: Any) -> gr.Slider:
    ann = model.model_fields[name].annotation
    if step is None:
        step = 1 if ann is int else 0.01
    lo, hi = bounds(model, name, step)
    text = label_of(model, name, label)
    return gr.Slider(minimum=lo, maximum=hi, step=step, value=default(model, name) if value is None else value,
                     label=text, info=info_of(model, name, text), elem_id=kw.pop("elem_id", name), **kw)


def number(model: type[BaseModel], name: str, label: str | None = None, *, value: Any = None, **kw: Any) -> gr.Number:
    lo, hi = bounds(model, name)
    ann = model.model_fields[name].annotation
    return gr.Number(value=default(model, name) if value is None else value, minimum=lo, maximum=hi,
                     precision=0 if ann is int else None, label=label_of(model, name, label),
                     info=info_of(model, name, label_of(model, name, label)), elem_id=kw.pop("elem_id", name), **kw)


def checkbox(model: type[BaseModel], name: str, label: str | None = None, *, value: Any = None,
             **kw: Any) -> gr.Checkbox:
    return gr.Checkbox(value=default(model, name) if value is None else value, label=label_of(model, name, label),
                       info=info_of(model, name, label_of(model, name, label)), elem_id=kw.pop("elem_id", name), **kw)


def dropdown_enum(model: type[BaseModel], name: str, enum: type[Enum], label: str | None = None, *,
                  value: Any = None, **kw: Any) -> gr.Dropdown:
    return gr.Dropdown(choices=[e.value for e in enum], value=default(model, name) if value is None else value,
                       label=label_of(model, name, label), info=info_of(model, name, label_of(model, name, label)),
                       elem_id=kw.pop("elem_id", name), **kw)
