"""pytest plugin of the teeth runs (``-p lossproofs.broken._examples``): how many hypothesis
examples each property ran, at which one it first failed, and the replay of that example
against the bug-free twin.

Counting: each ``@given`` test is run with its ``.hypothesis.inner_test`` (the hook hypothesis
offers for wrapping every example) replaced by a counter, and the counts go into the JUnit XML
report as the test case's properties :data:`EXAMPLES` (valid examples run, the failing one
included) and :data:`FIRST_FAILURE` (the number of the first example that raised). Examples
that hypothesis discards (``assume``, a filtered ``data.draw``) are not counted. With the
``teeth`` profile (derandomized, no shrinking) hypothesis stops generating at the first failure
and replays that example once to report it; the replay is counted in :data:`EXAMPLES`, not in
:data:`FIRST_FAILURE`. Tests without ``@given`` (the special values, the error cases) get no
properties: they run one fixed case.

Replaying: the plugin turns on ``print_blob`` (which changes no example) and records each
failure's ``@reproduce_failure`` arguments as the property :data:`REPRODUCE`. In the twin's run
:data:`REPLAY_ENV` (a JSON object: test id → those arguments) makes each listed test run that
one example, through hypothesis's own ``reproduce_failure``; hypothesis then raises
``DidNotReproduce`` when the example passes, which this plugin reports as a pass (property
:data:`REPLAYED`), and any other outcome as it is.
"""

from __future__ import annotations

import ast
import base64
import functools
import json
import os
import re

import pytest
from hypothesis import reproduce_failure, settings
from hypothesis.errors import DidNotReproduce, StopTest, UnsatisfiedAssumption

EXAMPLES = "hypothesis_examples"
FIRST_FAILURE = "examples_to_first_failure"
REPRODUCE = "reproduce_failure"
REPLAYED = "replayed_failing_example"
REPLAY_ENV = "LOSSPROOFS_TEETH_REPLAY"

# Raised inside a test body by hypothesis itself for an example it throws away, not a failure.
_DISCARDED = (UnsatisfiedAssumption, StopTest)
# hypothesis's words when a reproduced example passes (core.py, the reproduce_failure branch).
_DID_NOT_FAIL = "Expected the test to raise an error, but it completed successfully"
_BLOB = re.compile(r"@reproduce_failure\('([^']+)', (b'[^']*'|b\"[^\"]*\")\)")
# Set by the public ``reproduce_failure`` decorator; it has no undo, and the function object is
# shared by every parametrization of a test, so the plugin puts the old value back.
_ATTRIBUTE = "_hypothesis_internal_use_reproduce_failure"


def pytest_configure(config):
    if settings._current_profile == "teeth":  # hypothesis exposes no public getter
        settings.register_profile("teeth", parent=settings.get_profile("teeth"),
                                  print_blob=True)
        settings.load_profile("teeth")


def _reproduction(error: BaseException) -> str | None:
    """The ``@reproduce_failure`` arguments hypothesis attached to ``error``, as JSON."""
    for note in getattr(error, "__notes__", ()):
        if m := _BLOB.search(note):
            blob = ast.literal_eval(m.group(2))
            return json.dumps([m.group(1), base64.b64encode(blob).decode("ascii")])
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    fn = getattr(item, "obj", None)
    handle = getattr(fn, "hypothesis", None)
    if handle is None:
        return (yield)
    inner = handle.inner_test
    counts = {"run": 0, "first_failure": None}
    replay = json.loads(os.environ.get(REPLAY_ENV) or "{}").get(item.nodeid)
    previous = getattr(fn, _ATTRIBUTE, None)
    if replay:
        version, blob = json.loads(replay)
        reproduce_failure(version, base64.b64decode(blob))(fn)

    @functools.wraps(inner)
    def counted(*args, **kwargs):
        try:
            result = inner(*args, **kwargs)
        except (*_DISCARDED, pytest.skip.Exception):
            raise
        except BaseException:
            counts["run"] += 1
            if counts["first_failure"] is None:
                counts["first_failure"] = counts["run"]
            raise
        counts["run"] += 1
        return result

    handle.inner_test = counted
    try:
        return (yield)
    except DidNotReproduce as e:
        if replay and str(e).startswith(_DID_NOT_FAIL):
            item.user_properties.append((REPLAYED, 1))
            return None  # the example that failed on the broken module passes here
        raise
    except BaseException as e:
        if (blob := _reproduction(e)) is not None:
            item.user_properties.append((REPRODUCE, blob))
        raise
    finally:
        handle.inner_test = inner
        setattr(fn, _ATTRIBUTE, previous)
        item.user_properties.append((EXAMPLES, counts["run"]))
        if counts["first_failure"] is not None:
            item.user_properties.append((FIRST_FAILURE, counts["first_failure"]))
