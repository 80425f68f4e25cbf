"""Deployment files: the Dockerfile lints clean, the compose file validates, and every file, flag and command the
Dockerfile and the Windows launchers refer to exists."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.hang import HANG_S

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BATS = ("install.bat", "update.bat", "run.bat")


def _tool(name: str) -> str:
    found = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    if found is None:
        pytest.fail(f"{name} is not installed (pip install -r requirements-dev.txt)")
    return found


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text(encoding="utf-8")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(l for l in _dockerfile().splitlines() if not l.lstrip().startswith("#")))
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


# -- Dockerfile ----------------------------------------------------------------------------------------------

def test_dockerfile_lints_clean_with_hadolint():
    proc = subprocess.run([_tool("hadolint"), "--no-color", str(ROOT / "Dockerfile")],
                          capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_base_user_port_healthcheck_and_data_dir():
    from studio.paths import DATA_DIR_ENV

    ins = _instructions()
    froms = [a for i, a in ins if i == "FROM"]
    assert froms == ["nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu${UBUNTU_VERSION}"]
    args = {a.split("=")[0] for i, a in ins if i == "ARG"}
    assert {"CUDA_VERSION", "TORCH_CUDA", "TORCH_VERSION"} <= args
    users = [a for i, a in ins if i == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    assert any(i == "HEALTHCHECK" and "7860" in a for i, a in ins)
    assert any(i == "EXPOSE" and a == "7860" for i, a in ins)
    env = " ".join(a for i, a in ins if i == "ENV")
    assert f"{DATA_DIR_ENV}=/data" in env and "HF_HOME=/data/hf_home" in env
    # torch from the index matching the CUDA build
    assert any("download.pytorch.org/whl/${TORCH_CUDA}" in a for i, a in ins if i == "RUN")


def test_dockerfile_command_and_copied_files_exist():
    import app

    ins = _instructions()
    cmd = [a for i, a in ins if i == "CMD"][-1]
    argv = yaml.safe_load(cmd)  # exec form is a JSON (so YAML) list
    assert argv[:2] == ["python", "app.py"] and (ROOT / "app.py").is_file()
    args = app.parse_args(argv[2:])
    assert args.listen == "0.0.0.0" and args.port == 7860
    assert app.parse_args([]).listen == "127.0.0.1"  # outside the container: local only
    for i, a in ins:
        if i == "COPY":
            sources = [s for s in a.split() if not s.startswith("--")][:-1]
            for src in sources:
                assert (ROOT / src).exists(), f"COPY source {src} missing"
        if i == "RUN":
            for ref in re.findall(r"-r\s+([^\s;]+)", a):
                assert (ROOT / ref).is_file(), f"RUN refers to missing {ref}"


def _dockerignored(rel: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches everything under a matched folder."""
    parts = rel.split("/")
    ignored = False
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.strip("/")
        for k in range(1, len(parts) + 1):
            prefix = "/".join(parts[:k])
            if fnmatch.fnmatchcase(prefix, p) or (p.startswith("**/") and fnmatch.fnmatchcase(parts[k - 1], p[3:])):
                ignored = not neg
                break
    return ignored


def test_dockerignore_keeps_what_the_image_needs_and_drops_user_data():
    patterns = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    needed = ["app.py", "requirements.txt", "modules/memory/streaming.py", "studio/paths.py", "bench/gpu.py",
              "modules/models/registry.py"]
    needed += [str(p.relative_to(ROOT)) for p in (ROOT / "modules/models/tiny_hub").rglob("*") if p.is_file()][:5]
    for rel in needed:
        assert (ROOT / rel).exists(), rel
        assert not _dockerignored(rel, patterns), f"{rel} is excluded from the build context"
    for rel in (".venv/bin/python", ".git/HEAD", "outputs/video.mp4", "settings.json", "queue.db",
                "hf_home/hub/x", "tests/conftest.py", "modules/__pycache__/x.pyc"):
        assert _dockerignored(rel, patterns), f"{rel} would be sent to the Docker daemon"


# -- docker-compose.yml --------------------------------------------------------------------------------------

def test_compose_validates_against_the_compose_schema():
    proc = subprocess.run([_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                           str(ROOT / "docker-compose.yml")], capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_gpu_port_volumes_and_healthcheck():
    from studio.paths import DATA_DIR_ENV, DataPaths
    from studio.settings import Settings

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    svc = compose["services"]["fp-studio"]  # the default service; the `cluster` profile's: tests/cluster
    (dev,) = svc["deploy"]["resources"]["reservations"]["devices"]
    assert dev["count"] == "all" and "gpu" in dev["capabilities"] and dev["driver"] == "nvidia"
    assert any(str(p).endswith(":7860:7860") or str(p) == "7860:7860" for p in svc["ports"])
    assert svc["environment"][DATA_DIR_ENV] == "/data"
    targets = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}
    paths = DataPaths(Path("/data"))
    s = Settings()
    for needed in ("/data", svc["environment"]["HF_HOME"], str(paths.resolve(s.output_dir)),
                   str(paths.resolve(s.lora_dir)), str(paths.presets_dir)):
        assert needed in targets, f"no volume for {needed}"
    # settings.json and the queue database live in the data volume
    assert paths.settings_file.parent == paths.queue_db.parent == Path("/data")
    for host in targets.values():  # bind mounts point at folders shipped in the repository
        if host.startswith("./"):
            assert (ROOT / host).is_dir(), host
    named = {v.split(":")[0] for service in compose["services"].values() for v in service.get("volumes", [])}
    assert set(compose["volumes"]) == {v for v in named if not v.startswith(".")}
    assert "7860" in " ".join(svc["healthcheck"]["test"])
    assert svc["build"]["context"] == "."


# -- Windows launchers ---------------------------------------------------------------------------------------

CMD_BUILTINS = {"@echo", "echo", "echo.", "rem", "setlocal", "cd", "set", "if", "goto", "pause", "exit", "choice", "where",
                ")", "(", "else"}
EXTERNAL = {"python", "git", '"%py%"', "venv\\scripts\\python.exe"}  # lower case


def _bat_lines(name: str) -> list[str]:
    raw = (ROOT / name).read_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b""), f"{name} needs CRLF line endings"
    return [l.strip() for l in raw.decode("ascii").splitlines() if l.strip()]


@pytest.mark.parametrize("name", BATS)
def test_bat_commands_and_files_exist(name):
    lines = _bat_lines(name)
    for line in lines:
        if line.startswith(":") or line.lower().startswith("rem "):
            continue
        command = re.sub(r"^(if .*?\)\s*|if not exist \S+ |if errorlevel \d+ |if not errorlevel \d+ )", "",
                         line, flags=re.I).split()[0]
        assert command.lower() in CMD_BUILTINS | EXTERNAL, f"{name}: unexpected command {command!r} in {line!r}"
    text = "\n".join(lines)
    if "venv\\Scripts\\python.exe" in text:  # the interpreter install.bat creates
        assert "python -m venv venv" in "\n".join(_bat_lines("install.bat"))
    for ref in re.findall(r"[\w./\\-]+\.(?:txt|py|bat)\b", text):
        assert (ROOT / ref.replace("\\", "/")).is_file(), f"{name} refers to missing {ref}"
    for label in re.findall(r"goto :?(\w+)", text):
        assert re.search(rf"^:{label}$", text, re.M), f"{name}: goto {label} has no label"


def test_install_bat_offers_cuda_builds_torch_and_sageattention():
    text = "\n".join(_bat_lines("install.bat"))
    assert "python -m venv venv" in text and "-m pip install -r requirements.txt" in text
    for build in ("cu126", "cu128", "cu130", "cpu"):
        assert f'set "TORCH_CUDA={build}"' in text
    assert "download.pytorch.org/whl/%TORCH_CUDA%" in text and "sageattention" in text
    # the same torch build everywhere
    torch_pins = set(re.findall(r"torch==([\d.]+)", text))
    setup = (ROOT / "scripts/setup.sh").read_text()
    docker = re.search(r"ARG TORCH_VERSION=([\d.]+)", _dockerfile()).group(1)
    assert torch_pins == set(re.findall(r"torch==([\d.]+)", setup)) == {docker}


def test_update_bat_pulls_then_reinstalls_and_run_bat_starts_the_app():
    update = "\n".join(_bat_lines("update.bat"))
    assert update.index("git pull") < update.index("-m pip install -r requirements.txt")
    run = "\n".join(_bat_lines("run.bat"))
    assert "app.py %*" in run
