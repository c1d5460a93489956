"""The divergence ledger (``lossproofs/ledger``): each entry's example through its check.

For targets of the entry's families the suite plugin makes each test a strict xfail that
expects the entry's exception: when the implementation is fixed, the test XPASSes, strict mode
reports it, and the entry is removed. Every other implementation must pass. The remaining tests
keep the ledger honest: each ``affected`` predicate covers its own example and not the case
just outside it (which affected targets get right), the reference rejects what torch accepts,
and the README's table is the ledger's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lossproofs import checks, ledger, reference
from lossproofs.suite._support import require

PREDICATED = [e for e in ledger.LEDGER if e.affected is not None]


def _id(entry):
    return entry.name


@pytest.mark.parametrize("divergence", ledger.LEDGER, ids=_id)
def test_divergence_example(impl, divergence):
    require(impl, divergence.function)
    checks.run_check(impl, divergence).raise_for_failure()


@pytest.mark.parametrize("entry", PREDICATED, ids=_id)
def test_predicate_covers_its_example_and_not_the_near_miss(entry):
    """The example is set aside by the generic properties (else the pinned example and the
    set-aside would drift apart); the near miss is not."""
    assert np.any(entry.affected(entry.example, entry.direction))
    assert entry.near_miss is not None, "an affected predicate needs a near miss to test"
    assert not np.any(entry.affected(entry.near_miss, entry.direction))


@pytest.mark.parametrize("entry", PREDICATED, ids=_id)
def test_case_just_outside_a_divergence_passes(impl, entry):
    """A predicate that set aside what the implementation gets right would hide evidence: the
    near miss runs through the same check and must pass, whatever the target."""
    require(impl, entry.function)
    checks.run_check(impl, entry, entry.near_miss).raise_for_failure()


REJECTS = [e for e in ledger.LEDGER if e.check == "rejects"]


@pytest.mark.parametrize("entry", REJECTS, ids=_id)
def test_reference_rejects_what_torch_silently_accepts(entry):
    arrays, params = entry.example.arrays, entry.example.params
    with pytest.raises(ValueError) as info:
        getattr(reference, entry.function)(*arrays, **params)
    assert any(k in str(info.value) for k in params), info.value


README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.skipif(not README.exists(), reason="the README is in the repository, not the wheel")
def test_readme_divergence_table_is_the_ledger():
    text = README.read_text(encoding="utf-8")
    table = ledger.markdown_table()
    assert table in text, (
        "README.md's divergence table differs from the ledger; regenerate it with "
        "`python -m lossproofs.ledger` and paste it between the ledger markers")
