"""Prompts from pictures: a vision-language model captions a start image, describes a source video and
rewrites a short prompt as a FramePack motion prompt (docs/captioning.md).

`inputs` checks what a request names (torch-free), `instructions` holds what the model is asked and how its
answers become prompts (torch-free), `vlm` loads and runs the model, `helpers` puts them together."""
