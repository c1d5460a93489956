"""The environment block that every result written to disk carries, and safe output paths.

Every JSON, Markdown or PNG this project writes records where it was measured (torch and
numpy versions, device, CPU and GPU model, thread count, git commit) and is never silently
overwritten: :func:`claim_output` refuses an existing file unless the caller says
``overwrite=True`` (the command-line ``--overwrite`` flag).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU's marketing name, from /proc/cpuinfo where it exists."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def git_commit() -> str:
    """HEAD of the checkout this package runs from, with ``-dirty`` if it has local changes.

    ``unknown`` outside a git checkout (an installed wheel, say). A copy of the tree without
    its ``.git`` (a GPU machine the tree was shipped to) can name its commit in the
    ``LOSSPROOFS_GIT_COMMIT`` environment variable.
    """
    if os.environ.get("LOSSPROOFS_GIT_COMMIT"):
        return os.environ["LOSSPROOFS_GIT_COMMIT"]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=_REPO_ROOT, capture_output=True, text=True,
            check=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=_REPO_ROOT,
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def environment(device: str = "cpu") -> dict[str, Any]:
    """Describe the machine and software a measurement ran on.

    ``device`` is the torch device string the measurement used (``"cpu"`` or ``"cuda"``).
    """
    import numpy as np
    import torch

    env: dict[str, Any] = {
        "timestamp_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "cuda_available": torch.cuda.is_available(),
        "gpu_name": None,
        "cuda_version": torch.version.cuda,
    }
    try:
        import scipy

        env["scipy"] = scipy.__version__
    except ImportError:  # pragma: no cover - scipy is a dependency
        env["scipy"] = None
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu_name"] = torch.cuda.get_device_name(torch.device(device))
    return env


def environment_markdown(env: dict[str, Any]) -> str:
    """A Markdown bullet list of an :func:`environment` block, for report headers."""
    keys = [
        ("timestamp_utc", "measured (UTC)"), ("device", "device"), ("gpu_name", "GPU"),
        ("cpu_model", "CPU"), ("cpu_count", "CPU cores"), ("torch_num_threads", "torch threads"),
        ("torch", "torch"), ("cuda_version", "CUDA"), ("numpy", "numpy"), ("scipy", "scipy"),
        ("python", "Python"), ("platform", "platform"), ("git_commit", "git commit"),
    ]
    lines = [f"- {label}: `{env[k]}`" for k, label in keys if env.get(k) is not None]
    lines += [f"- {k}: `{v}`" for k, v in env.items()
              if k not in dict(keys) and k != "cuda_available" and v is not None]
    return "\n".join(lines)


def default_output_dir(kind: str, device: str = "cpu") -> Path:
    """``results/<kind>/<UTC timestamp>-<device>``: a fresh directory per run by default."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path("results") / kind / f"{stamp}-{device.replace(':', '')}"


def _refusal(path: Path) -> str:
    return (f"refusing to overwrite existing result {str(path)!r}: choose another --out "
            "directory or pass --overwrite")


def result_paths(out: str | os.PathLike[str] | None, kind: str, device: str = "cpu",
                 overwrite: bool = False) -> tuple[Path, Path]:
    """``<kind>.json`` and ``<kind>.md`` in ``out`` (None: :func:`default_output_dir`), checked
    before a command spends minutes on the run: ``FileExistsError`` naming the first that
    exists (:func:`claim_output`'s refusal), unless ``overwrite``."""
    directory = Path(out) if out else default_output_dir(kind, device)
    paths = directory / f"{kind}.json", directory / f"{kind}.md"
    for p in paths:
        if p.exists() and not overwrite:
            raise FileExistsError(_refusal(p))
    return paths


def claim_output(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Return ``path`` ready to be written, refusing to replace an existing file silently.

    Raises ``FileExistsError`` naming the file unless ``overwrite`` is true. Creates the
    parent directory.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(_refusal(p))
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def write_json(path: str | os.PathLike[str], payload: Any, overwrite: bool = False) -> Path:
    """Write ``payload`` as indented JSON via :func:`claim_output`; returns the path."""
    p = claim_output(path, overwrite)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n",
                   encoding="utf-8")
    os.replace(tmp, p)
    return p


def write_text(path: str | os.PathLike[str], text: str, overwrite: bool = False) -> Path:
    """Write ``text`` via :func:`claim_output`; returns the path."""
    p = claim_output(path, overwrite)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, p)
    return p
