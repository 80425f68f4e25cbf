"""Issue 14 (4): the system prompt override in both forms the guide implies, through the one parser.

A plain template with `{}`, and the JSON object {"template": "...{}...", "crop_start": N}: both reach the Llama
text encoder as the formatted text, with crop_start tokens cut off its output (computed for the plain form).
A bad template is refused when the setting is saved, and adding a job never fails because of the setting.
"""

from __future__ import annotations

import json

import pytest
import torch
from engine_helpers import golden_params, output_options, run_engine
from pydantic import ValidationError

from modules.framepack import conditioning as cond
from modules.framepack.params import GenerationParams
from modules.framepack.system_prompt import SystemPromptTemplate, parse_system_prompt, system_prompt_error
from studio.settings import Settings, SettingsStore

PLAIN = "SYSTEM: describe {braces} literally. USER: {} END"
PROMPT = "a red fox runs"


def test_parser_accepts_both_forms_and_names_what_is_wrong():
    plain = parse_system_prompt(PLAIN)
    assert plain == SystemPromptTemplate(template=PLAIN, crop_start=None)
    assert plain.format(PROMPT) == "SYSTEM: describe {braces} literally. USER: a red fox runs END"
    as_json = parse_system_prompt(json.dumps({"template": PLAIN, "crop_start": 95}))
    assert as_json == SystemPromptTemplate(template=PLAIN, crop_start=95)
    assert parse_system_prompt('{"template": "x {} y"}').crop_start is None
    assert parse_system_prompt("{} at dusk").template == "{} at dusk"  # starts with a brace, not JSON
    assert "'{}'" in system_prompt_error("no placeholder")
    assert "template" in system_prompt_error('{"template": "no placeholder", "crop_start": 95}')
    assert "crop_start" in system_prompt_error('{"template": "a {}", "crop_start": "many"}')
    assert "crop_start" in system_prompt_error('{"template": "a {}", "crop_start": -1}')
    assert "tmpl" in system_prompt_error('{"tmpl": "a {}"}')  # unknown key named
    assert system_prompt_error("") is None and system_prompt_error(None) is None


def _capture_llama_ids(text_encoder):
    seen: list[torch.Tensor] = []

    def hook(_module, _args, kwargs):
        seen.append(kwargs["input_ids"].clone())

    return seen, text_encoder.register_forward_pre_hook(hook, with_kwargs=True)


def test_both_forms_give_the_text_encoder_the_formatted_text_and_crop(tiny_manager):
    m = tiny_manager.shared()
    tok = m.tokenizer
    computed = cond.template_crop_start(tok, PLAIN)
    assert cond.llama_input(PROMPT, tok, PLAIN) == (PLAIN.replace("{}", PROMPT), computed)
    js = json.dumps({"template": PLAIN, "crop_start": computed - 2})
    assert cond.llama_input(PROMPT, tok, js) == (PLAIN.replace("{}", PROMPT), computed - 2)
    assert cond.llama_input(PROMPT, tok, None) == (cond.DEFAULT_TEMPLATE.format(PROMPT),
                                                   cond.template_crop_start(tok, cond.DEFAULT_TEMPLATE))

    def encode(template):
        seen, handle = _capture_llama_ids(m.text_encoder)
        try:
            emb = cond.encode_prompt(PROMPT, tok, m.text_encoder, m.tokenizer_2, m.text_encoder_2, template)
        finally:
            handle.remove()
        return emb, seen[0]

    plain_emb, plain_ids = encode(PLAIN)
    expected_ids = tok(PLAIN.replace("{}", PROMPT))["input_ids"]
    assert plain_ids[0, :len(expected_ids)].tolist() == expected_ids
    same_emb, same_ids = encode(json.dumps({"template": PLAIN, "crop_start": computed}))
    assert torch.equal(same_ids, plain_ids) and torch.equal(same_emb.llama_vec, plain_emb.llama_vec)
    # crop_start as given: two fewer template tokens cut off, so two more tokens reach the transformer.
    wide_emb, wide_ids = encode(js)
    assert int(wide_emb.llama_mask.sum()) == int(plain_emb.llama_mask.sum()) + 2
    assert torch.equal(wide_emb.llama_vec[:, 2:int(wide_emb.llama_mask.sum())],
                       plain_emb.llama_vec[:, :int(plain_emb.llama_mask.sum())])


def test_a_job_with_the_json_form_runs_and_uses_it(tiny_manager, golden_dir, tmp_path):
    js = json.dumps({"template": "Describe the video: {}", "crop_start": 3})
    params = golden_params(golden_dir, "original", total_seconds=1.0, steps=1, system_prompt=js)
    trace, events = run_engine(tiny_manager, params, output_options(tmp_path), trace=True)
    m = tiny_manager.shared()
    expected = cond.encode_prompt(params.prompt, m.tokenizer, m.text_encoder, m.tokenizer_2, m.text_encoder_2, js)
    assert torch.equal(trace["prepared"].prompt_embs[0].llama_vec, expected.llama_vec)
    assert events[-1].result.video.is_file()


def test_params_accept_both_forms_and_refuse_a_bad_template(golden_dir):
    js = json.dumps({"template": PLAIN, "crop_start": 95})
    assert golden_params(golden_dir, "original", system_prompt=js).system_prompt == js
    assert golden_params(golden_dir, "original", system_prompt=PLAIN).system_prompt == PLAIN
    with pytest.raises(ValidationError, match="system_prompt: the template must contain"):
        GenerationParams(prompt="x", system_prompt="no placeholder")


def test_settings_refuse_a_bad_template_when_saved_and_keep_the_rest_of_an_old_file(tmp_path):
    with pytest.raises(ValidationError, match="system_prompt_template"):
        Settings(system_prompt_template="no placeholder")
    s = Settings(override_system_prompt=True, system_prompt_template=json.dumps({"template": "a {}", "crop_start": 1}))
    assert s.system_prompt_override() == '{"template": "a {}", "crop_start": 1}'
    # A settings.json saved before the check: the bad template falls back to the default, nothing else does.
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"mp4_crf": 30, "override_system_prompt": True,
                                "system_prompt_template": "no placeholder"}))
    store = SettingsStore(path)
    loaded = store.load()
    assert loaded.mp4_crf == 30 and loaded.system_prompt_template == "" and loaded.system_prompt_override() is None
    assert "system_prompt_template" in store.warning
    assert json.loads(next(tmp_path.glob("settings.json.invalid-*")).read_text())["system_prompt_template"] \
        == "no placeholder"
