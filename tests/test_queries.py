"""Declared inspect queries: one parser for paths, typed parameters, checked replies."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from deml_protocol import queries
from deml_protocol.errors import BadArgument, UnknownQuery

ADDRESS = "0x" + "Ab" * 20
EXAMPLES: dict[str, dict[str, Any]] = {
    "balances": {"address": ADDRESS},
    "blob": {"cid": "bafkreidon73zkcrwdb5iafqtijxildoonbwnpv7dyd6ef3qdgads2jc4su"},
    "blob_data": {
        "cid": "bafkreidon73zkcrwdb5iafqtijxildoonbwnpv7dyd6ef3qdgads2jc4su",
        "offset": 7,
    },
    "uploads": {"uploader": ADDRESS},
    "jobs": {},
    "job": {"job_id": 3},
    "round": {"job_id": 3, "round": 0},
    "leaderboard": {"job_id": 3},
    "latest_model": {"job_id": 3},
    "state_digest": {},
    "storage": {},
    "unpinned": {},
}


@pytest.mark.parametrize("query", queries.ALL_QUERIES, ids=lambda q: q.name)
def test_a_built_path_parses_back_to_the_same_query(query: queries.Query[Any]) -> None:
    params = EXAMPLES[query.name]
    found, parsed = queries.match(f" /{query.path(**params)}/ ")
    expected = {k: v.lower() if k in ("address", "uploader") else v for k, v in params.items()}
    assert found is query and parsed == expected


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("nope", UnknownQuery),
        ("jobs/1/nope", UnknownQuery),
        ("jobs/1/rounds/0/extra", UnknownQuery),
        ("", UnknownQuery),
        ("jobs/x", BadArgument),
        ("jobs/-1", BadArgument),
        ("jobs/\u00b2", BadArgument),  # a digit to str.isdigit, not to us
        ("jobs/1/rounds/x", BadArgument),
        ("balances/0x12", BadArgument),
        ("blobs//data/0", BadArgument),
    ],
)
def test_bad_paths_name_their_error(path: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        queries.match(path)


def test_a_literal_mismatch_wins_over_a_bad_parameter() -> None:
    """`jobs/x/nope` fits no template, so it is an unknown query, not a bad job id."""
    with pytest.raises(UnknownQuery):
        queries.match("jobs/x/nope")


def test_the_unknown_query_detail_is_bounded() -> None:
    with pytest.raises(UnknownQuery) as caught:
        queries.match("x" * 100_000)
    assert len(caught.value.detail) < 2_000


def test_decode_checks_the_declared_shape() -> None:
    digest = queries.STATE_DIGEST.decode(b'{"state_digest": "ab"}')
    assert digest["state_digest"] == "ab"
    with pytest.raises(ValueError, match="lacks"):
        queries.STATE_DIGEST.decode(b'{"other": 1}')
    with pytest.raises(ValueError, match="list"):
        queries.JOBS.decode(b"{}")
    with pytest.raises(ValueError, match="lacks"):
        queries.JOBS.decode(b'[{"id": 1}]')


def test_path_refuses_unknown_or_bad_parameters() -> None:
    with pytest.raises(TypeError):
        queries.JOB.path(job_id=1, extra=2)
    with pytest.raises(BadArgument):
        queries.BALANCES.path(address="alice")


def test_every_query_has_a_view_taking_exactly_its_parameters() -> None:
    from dapp.inspector import VIEWS

    assert set(VIEWS) == set(queries.ALL_QUERIES)
    for query, view in VIEWS.items():
        declared = {segment[1:].split(":")[0] for segment in query.segments if "{" in segment}
        signature = inspect.signature(view)
        assert list(signature.parameters)[0] == "state"
        # ``config``, when present, is the DApp's settings (dapp.inspector passes them)
        assert set(list(signature.parameters)[1:]) - {"config"} == declared, query.name


def test_addresses_in_any_case_are_answered_in_lower_case() -> None:
    upper = "0X" + "AB" * 20
    assert queries.match(f"balances/{upper}")[1] == {"address": "0x" + "ab" * 20}
