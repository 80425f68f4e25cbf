"""`attach` leaves no trace: the transformer, its modules, their classes and torch's global hooks are exactly
as before once the block exits (after a run with skips, and after an exception in the middle of a forward)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.modules import module as torch_module

from modules.framepack.cache import MagCache, MagnitudeRecorder, StepCache, TeaCache
from tests.caches.harness import run_section

_HOOK_DICTS = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks", "_forward_hooks_with_kwargs",
               "_forward_hooks_always_called", "_backward_pre_hooks", "_backward_hooks", "_state_dict_hooks",
               "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")
_GLOBAL_HOOKS = ("_global_forward_pre_hooks", "_global_forward_hooks", "_global_forward_hooks_always_called",
                 "_global_backward_pre_hooks", "_global_backward_hooks", "_global_module_registration_hooks",
                 "_global_parameter_registration_hooks", "_global_buffer_registration_hooks")


def _snapshot(model: nn.Module) -> dict[str, Any]:
    """Everything attach could change, by identity: module tree, instance attributes, hooks, parameters,
    the classes' attributes and torch's process-wide hook tables."""
    mods = {}
    for name, m in model.named_modules(remove_duplicate=False):
        mods[name] = (
            id(m), type(m),
            {k: id(v) for k, v in vars(m).items() if k not in _HOOK_DICTS},  # incl. _modules / _parameters dicts
            [(k, id(v)) for k, v in m._modules.items()],
            [(k, id(v), v.data_ptr()) for k, v in m._parameters.items() if v is not None],
            {h: list(getattr(m, h, {}) or {}) for h in _HOOK_DICTS},
        )
    classes = {type(m) for m in model.modules()} | {nn.Module, nn.ModuleList}
    return {
        "modules": mods,
        "classes": {c: dict(vars(c)) for c in classes},
        "globals": {g: list(getattr(torch_module, g, {}) or {}) for g in _GLOBAL_HOOKS},
    }


def _caches() -> list[StepCache]:
    return [TeaCache(0.15), MagCache([1.0, 1.0, 1.0, 1.0], threshold=1.0, max_consecutive_skips=1,
                                     retention_ratio=0.0), MagnitudeRecorder()]


@pytest.mark.parametrize("index", range(3), ids=["teacache", "magcache", "recorder"])
def test_attach_restores_the_transformer_exactly(tiny_original, golden_teacache, index):
    model = tiny_original
    before = _snapshot(model)
    cache = _caches()[index]
    cache.start_section(4)
    with cache.attach(model):
        # nothing process-wide or class-level is touched while attached either
        assert {c: dict(vars(c)) for c in before["classes"]} == before["classes"]
        assert _snapshot(model)["globals"] == before["globals"]
        run_section(model, golden_teacache, 0)
    assert cache.total_steps == 4 and (cache.skipped_steps > 0) == (index != 2)
    assert _snapshot(model) == before
    assert not any(hasattr(m, "_diffusers_hook") or "forward" in vars(m) for m in model.modules())


def test_exception_inside_a_forward_restores_and_the_next_attach_is_exact(tiny_original, golden_teacache):
    model = tiny_original
    before = _snapshot(model)
    last = model.single_transformer_blocks[-1] if len(model.single_transformer_blocks) else model.transformer_blocks[-1]

    class Abort(Exception):
        pass

    def boom(*_: Any) -> None:
        raise Abort  # an abort in the middle of the block stack

    cache = TeaCache(0.15)
    cache.start_section(4)
    handle = last.register_forward_pre_hook(boom)
    try:
        with pytest.raises(Abort), cache.attach(model):
            run_section(model, golden_teacache, 0)
    finally:
        handle.remove()
    assert _snapshot(model) == before

    # a fresh section on the same cache and transformer reproduces the golden pattern and latents
    cache.start_section(4)
    with cache.attach(model):
        out = run_section(model, golden_teacache, 0)
    assert cache.computed_log[-1] == golden_teacache["section00.teacache_computed"].bool().tolist()
    torch.testing.assert_close(out, golden_teacache["section00.generated_latents"], atol=1e-4, rtol=0)
    assert _snapshot(model) == before
