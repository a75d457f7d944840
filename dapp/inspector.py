"""Where a query goes: inspect path -> declared query -> view -> JSON reports.

Routed like advance inputs (``dapp.router``): every query is declared in
``deml_protocol.queries`` with typed parameters, one parser (:func:`deml_protocol.queries.match`)
turns a path into the query and its parameters, and :data:`VIEWS` names the view that
answers it (a view with a ``config`` parameter also gets the DApp's settings). A query never
changes the state.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Final

from deml_protocol import queries
from deml_protocol.errors import PayloadTooLarge, UnknownQuery

from . import views
from .config import Config
from .state import State

__all__ = ["VIEWS", "answer"]

View = Callable[..., Any]

VIEWS: Final[dict[queries.Query[Any], View]] = {
    queries.BALANCES: views.balances,
    queries.BLOB: views.blob,
    queries.BLOB_DATA: views.blob_data,
    queries.STORAGE: views.storage,
    queries.UNPINNED: views.unpinned,
    queries.UPLOADS: views.uploads,
    queries.JOBS: views.jobs,
    queries.JOB: views.job,
    queries.ROUND: views.round_view,
    queries.LEADERBOARD: views.leaderboard,
    queries.LATEST_MODEL: views.latest_model,
    queries.STATE_DIGEST: views.state_digest,
}


def answer(state: State, payload: bytes, config: Config) -> Any:
    """The reply to an inspect payload (a UTF-8 path); raises ``Rejected`` for a bad one."""
    if len(payload) > queries.MAX_PATH_BYTES:
        raise PayloadTooLarge(
            f"the query is {len(payload)} bytes; a query path is at most "
            f"{queries.MAX_PATH_BYTES} bytes (§5 lists them)"
        )
    try:
        path = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnknownQuery("inspect payload must be a UTF-8 path like balances/0x…") from exc
    query, params = queries.match(path)
    view = VIEWS[query]
    if "config" in inspect.signature(view).parameters:  # a view that shows settings
        params["config"] = config
    return view(state, **params)
