"""The system prompt override: the one parser of its two forms (no torch, so settings and params can use it).

A plain template with `{}` where the prompt goes:
    <|start_header_id|>system<|end_header_id|>...{}<|eot_id|>
or a JSON object with the template and, optionally, how many tokens the template puts before the prompt
(the original FramePack form; `crop_start` is computed from the tokenizer when left out):
    {"template": "...{}...", "crop_start": 95}

Only the first `{}` is replaced by the prompt; every other character (braces included) is literal.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modules.errors import format_errors


class SystemPromptTemplate(BaseModel):
    """The parsed override: `template` with `{}` for the prompt; `crop_start` None = count the prefix tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    template: str = Field(min_length=1)
    crop_start: int | None = Field(None, ge=0, le=4096)

    @field_validator("template")
    @classmethod
    def _has_placeholder(cls, v: str) -> str:
        if "{}" not in v:
            raise ValueError("the template must contain '{}' where the prompt goes")
        return v

    @property
    def prefix(self) -> str:
        """The text before the prompt."""
        return self.template.split("{}", 1)[0]

    def format(self, prompt: str) -> str:
        """The template with the prompt in place of its first `{}`."""
        before, after = self.template.split("{}", 1)
        return before + prompt + after


def parse_system_prompt(text: str) -> SystemPromptTemplate:
    """Either form (see the module doc). ValueError with a sentence when it is neither."""
    stripped = text.strip()
    data = None
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None  # not JSON: a plain template that starts with a brace, e.g. "{} at dusk"
    if isinstance(data, dict):
        try:
            return SystemPromptTemplate.model_validate(data)
        except ValidationError as exc:
            raise ValueError("the JSON form needs \"template\" (text with '{}') and optionally \"crop_start\" "
                             "(a whole number of tokens): " + "; ".join(format_errors(exc))) from None
    if "{}" not in text:
        raise ValueError("the template must contain '{}' where the prompt goes, or be a JSON object like "
                         "{\"template\": \"...{}...\", \"crop_start\": 95}")
    return SystemPromptTemplate(template=text)


def system_prompt_error(text: str | None) -> str | None:
    """None when `text` is empty or a valid override, else the sentence saying why not."""
    if text is None or not text.strip():
        return None
    try:
        parse_system_prompt(text)
    except ValueError as exc:
        return str(exc)
    return None
