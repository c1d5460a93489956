"""Help text shared by every command: the targets and profiles a user can name, the families a
module can declare out, and docstrings made plain for a terminal. Imports nothing heavy, so
``--help`` answers at once; the commands (:mod:`lossproofs.cli` and each report's ``main``)
import it."""

from __future__ import annotations

import re
import shutil
import textwrap

from lossproofs.declarations import DECLARABLE

# The built-in targets, written out rather than read from lossproofs.targets (which imports
# torch: about a second) so that `lossproofs test --help` answers at once. tests/test_cli.py
# checks that the names are exactly lossproofs.targets.BUILTIN_TARGETS' keys.
BUILTIN_TARGET_HELP: dict[str, str] = {
    "torch": "torch.nn.functional on the CPU (the default)",
    "nn": "the torch.nn modules (nn.CrossEntropyLoss()(x, t), ...) on the CPU",
    "compile": "torch.compile of each torch.nn.functional loss (inductor) on the CPU",
    "cuda": "torch.nn.functional on the first CUDA device",
    "chunked": "torch's chunked F.linear_cross_entropy (linear_cross_entropy only)",
    "jax": "JAX's own losses and autodiff (pip install 'lossproofs[jax]')",
    "tensorflow": "TensorFlow's own losses and autodiff (pip install 'lossproofs[tensorflow]')",
    "tinygrad": "tinygrad's own losses and autodiff (pip install 'lossproofs[tinygrad]')",
}
TARGET_FORM_HELP: dict[str, str] = {
    "chunked:<acc_policy>,<chunking_method>,<batch_chunk_size>[,<acc_dtype>]":
        "one configuration of the chunked path, none for an unset field "
        "(e.g. chunked:compact,none,1)",
    "module:package.module":
        "your own module, with torch.nn.functional's function names and signatures",
    "module:path/to/file.py": "the same, from a Python file",
}
TARGET_OPTION_HELP = (", ".join(BUILTIN_TARGET_HELP) + ", chunked:POLICY,METHOD,SIZE[,DTYPE], "
                      + ", ".join(list(TARGET_FORM_HELP)[1:])
                      + " (default torch; lossproofs test --help says what each is)")
"""``--target``'s help in every command that takes one."""
# The hypothesis profiles registered by lossproofs/suite/plugin.py (tests/test_cli.py checks
# the names and example counts against it).
PROFILE_HELP: dict[str, str] = {
    "dev": "25 examples per property (the default)",
    "ci": "100 examples, derandomized, no example database (chosen when CI is set)",
    "thorough": "2000 examples per property",
    "teeth": "100 examples, derandomized, no shrinking (the broken-implementation runs)",
}


def _listing(entries: dict[str, str], width: int = 14) -> str:
    """``  name   description`` lines (wrapped at 92 columns); a name too long for the column
    gets a line of its own."""
    lines = []
    for name, text in entries.items():
        wrapped = textwrap.wrap(text, 90 - width)
        lines += ([f"  {name:<{width}}{wrapped[0]}"] if len(name) < width
                  else [f"  {name}", f"  {'':<{width}}{wrapped[0]}"])
        lines += [f"  {'':<{width}}{more}" for more in wrapped[1:]]
    return "\n".join(lines)


# function -> the families it can be declared without (lossproofs.declarations, which imports
# only numpy: cheap enough for --help)
DECLARATION_HELP = {function: ", ".join(families) for function, families in DECLARABLE.items()}


_ROLE = re.compile(r":(?:py:)?(?:mod|func|class|data|meth|attr|obj|exc|const|ref|doc):`([^`]+)`")


def _role_text(match: re.Match[str]) -> str:
    text = match.group(1)
    if (titled := re.fullmatch(r"(.+?)\s*<[^>]+>", text, re.S)) is not None:
        return titled.group(1)  # :func:`title <target>`
    return text.rsplit(".", 1)[-1] if text.startswith("~") else text


def plain(text: str) -> str:
    """Docstring text for a terminal: reST roles (``:mod:`x```) and ``literals`` without their
    markup, a literal-block ``::`` as a colon."""
    text = _ROLE.sub(_role_text, text)
    text = text.replace("``", "")
    return re.sub(r"::$", ":", text, flags=re.M)


def description(doc: str | None, paragraphs: int | None = None) -> str:
    """A docstring as an argparse description (use ``argparse.RawDescriptionHelpFormatter``):
    plain text (:func:`plain`), each paragraph and list item re-wrapped to the terminal, the
    first ``paragraphs`` only if given; a leading ``lossproofs <command>: `` is dropped (the
    usage line names the command)."""
    text = re.sub(r"^(python -m )?lossproofs [\w-]+: ", "", plain(doc or "").strip())
    text = text[:1].upper() + text[1:]
    blocks = [b for b in re.split(r"\n\s*\n", textwrap.dedent(text)) if b.strip()]
    blocks = blocks[:paragraphs] if paragraphs is not None else blocks
    width = max(40, min(shutil.get_terminal_size().columns - 2, 100))
    out = []
    for block in blocks:
        items = re.split(r"\n(?=\s*- )", block)  # a bullet list: one item per wrap
        out.append("\n".join(
            textwrap.fill(" ".join(item.split()), width, break_on_hyphens=False,
                          subsequent_indent="  " if item.lstrip().startswith("- ") else "")
            for item in items))
    return "\n\n".join(out)
