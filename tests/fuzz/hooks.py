"""Schemathesis hooks for the gateway's fuzz test (tests/integration/fuzz.rs).

Loaded through `SCHEMATHESIS_HOOKS`. Registers:

- `no_internal_error`, the only check the run uses: a response fails when its status is 5xx or
  when any GraphQL error in it has `extensions.code == "INTERNAL"` (the gateway's code for
  unexpected server errors). Schemathesis's own `not_a_server_error` is not used: it counts every
  resolver error with a `path` (NOT_FOUND, CONFLICT, FORBIDDEN, ...) as a server error.
- strategies for the gateway's custom scalars (`Decimal`, `JSON`), which schemathesis cannot
  generate by itself, and for `ID`, so that some generated IDs name the rows the test seeded
  (listed in `GATEWAY_FUZZ_IDS`, comma-separated) instead of always being random text.
"""

import json
import os

import graphql
import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes

INTERNAL = "INTERNAL"


def internal_errors(status_code, body):
    """Why a response counts as a server error, or None: a 5xx, or INTERNAL GraphQL errors."""
    if status_code >= 500:
        return f"HTTP {status_code}: {body[:2000]!r}"
    try:
        payload = json.loads(body)
    except ValueError:
        # Not judged: only GraphQL responses carry codes; a non-JSON 4xx is the client's fault.
        return None
    errors = payload.get("errors") if isinstance(payload, dict) else None
    internal = [
        e
        for e in errors or []
        if isinstance(e, dict)
        and isinstance(e.get("extensions"), dict)
        and e["extensions"].get("code") == INTERNAL
    ]
    if internal:
        return f"GraphQL error with code {INTERNAL}: {json.dumps(internal)}"
    return None


@schemathesis.check
def no_internal_error(ctx, response, case):
    """No 5xx and no GraphQL error with extensions.code INTERNAL."""
    reason = internal_errors(response.status_code, response.text)
    if reason is not None:
        raise AssertionError(reason)


_finite_floats = st.floats(allow_nan=False, allow_infinity=False)

# Decimal takes a string or a number; exponents reach past PostgreSQL's numeric range.
schemathesis.graphql.scalar(
    "Decimal",
    st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False).map(str).map(nodes.String),
        st.builds("{}e{}".format, st.integers(), st.integers(-200_000, 200_000)).map(nodes.String),
        st.integers().map(nodes.Int),
        _finite_floats.map(nodes.Float),
        st.text(max_size=20).map(nodes.String),
    ),
)


def _object(children):
    names = st.from_regex(r"\A[_A-Za-z][_0-9A-Za-z]{0,8}\Z")
    return st.dictionaries(names, children, max_size=4).map(
        lambda fields: nodes.Object(
            [
                graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v)
                for k, v in fields.items()
            ]
        )
    )


# Any JSON document, written as a GraphQL literal.
schemathesis.graphql.scalar(
    "JSON",
    st.recursive(
        st.one_of(
            st.just(nodes.Null),
            st.booleans().map(nodes.Boolean),
            st.integers().map(nodes.Int),
            _finite_floats.map(nodes.Float),
            st.text(max_size=20).map(nodes.String),
        ),
        lambda children: st.one_of(st.lists(children, max_size=4).map(nodes.List), _object(children)),
        max_leaves=12,
    ),
)

_seeded_ids = [i for i in os.environ.get("GATEWAY_FUZZ_IDS", "").split(",") if i]
_id_strategies = [st.uuids().map(str).map(nodes.String), st.text(max_size=40).map(nodes.String)]
if _seeded_ids:
    _id_strategies.insert(0, st.sampled_from(_seeded_ids).map(nodes.String))
schemathesis.graphql.scalar("ID", st.one_of(_id_strategies))
