"""What ``deml job create`` turns its options into: the initial model, the per-round held-out
shards (committed, salted), and the job spec (``deml_protocol.inputs.JOB_SPEC``).

The spec's plain fields are a table (:data:`SPEC_OPTIONS`): each row is one ``JOB_SPEC`` field,
its command-line option, type, default and help. ``deml job create`` grows one option per row,
so a new field of the job spec is one line here. Fields the console computes (the model's CID,
the shards' commitments, the recipe, the shard size) are in :data:`COMPUTED_FIELDS`; a test
checks that the two together cover ``JOB_SPEC`` exactly.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, TypeVar

import numpy as np
import numpy.typing as npt
import typer
from eth_abi.abi import is_encodable
from eth_abi.exceptions import EncodingError

from deml_protocol import inputs
from deml_protocol.cid import compute_cid

from . import model_zoo
from .datasets import shard_bytes
from .sklearn_training import BadRecipe, recipe_of
from .workspace import HoldoutShard

__all__ = [
    "COMPUTED_FIELDS",
    "SPEC_OPTIONS",
    "BadJobOption",
    "BadModelSpec",
    "SpecOption",
    "build_model",
    "check_recipe",
    "holdout_shards",
    "job_fields",
    "spec_options",
]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class SpecOption:
    field: str  # the JOB_SPEC field
    flag: str  # its option on `deml job create`
    kind: type
    default: Any
    help: str
    min: int | None = None  # the least value typer takes (integers)

    @property
    def parameter(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


#: One row per plain field of the job spec (see the module docstring).
SPEC_OPTIONS: Final = (
    SpecOption(
        "metric", "--metric", str, "accuracy", "accuracy, log_loss, roc_auc, rmse, mae or r2."
    ),
    SpecOption("commitSeconds", "--commit-seconds", int, 600, "Commit window, seconds.", min=1),
    SpecOption(
        "holdoutSeconds", "--holdout-seconds", int, 600, "Shard reveal window, seconds.", min=1
    ),
    SpecOption(
        "revealSeconds", "--reveal-seconds", int, 600, "Model reveal window, seconds.", min=1
    ),
    SpecOption(
        "minGain", "--min-gain", int, 1, "Score units a model must beat the baseline by.", min=0
    ),
    SpecOption("maxSubmissions", "--max-submissions", int, 16, "Commitments per round.", min=1),
    SpecOption(
        "commitBond", "--bond", int, 0, "Bond per commitment, base units of the asset.", min=0
    ),
    SpecOption("payout", "--payout", str, "proportional", "Budget split: proportional|equal."),
    SpecOption("aggregation", "--aggregation", str, "fedavg", "fedavg|median|trimmed_mean."),
    SpecOption("trimPercent", "--trim-percent", int, 0, "trimmed_mean: % cut at each end.", min=0),
)
#: Fields ``deml job create`` computes from its other options.
COMPUTED_FIELDS: Final = ("modelCid", "recipe", "holdoutRows", "holdoutCommitments")


def spec_options(command: F) -> F:
    """Give ``command`` (which takes ``**spec``) one keyword option per :data:`SPEC_OPTIONS`
    row; typer reads the signature."""
    signature = inspect.signature(command, eval_str=True)
    fixed = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    extra = [
        inspect.Parameter(
            row.parameter,
            inspect.Parameter.KEYWORD_ONLY,
            default=row.default,
            annotation=Annotated[
                row.kind,
                typer.Option(row.flag, help=row.help, min=row.min, rich_help_panel="Job spec"),
            ],
        )
        for row in SPEC_OPTIONS
    ]
    command.__signature__ = signature.replace(parameters=fixed + extra)  # type: ignore[attr-defined]
    return command


def spec_fields(options: dict[str, Any]) -> dict[str, Any]:
    """The table's JOB_SPEC fields from the parsed options (keyed by parameter name)."""
    return {row.field: options[row.parameter] for row in SPEC_OPTIONS}


def job_fields(
    model: bytes,
    shards: list[HoldoutShard],
    *,
    recipe: str,
    holdout_rows: int,
    options: dict[str, Any],
) -> dict[str, Any]:
    """Every ``JOB_SPEC`` field of the job ``deml job create`` posts, checked before anything
    is uploaded or staged: the recipe as data owners' ``deml train`` will read it, and the
    whole spec encoded once (a value out of its ABI type's range is ``BadJobOption``)."""
    check_recipe(recipe, features=model_features(model))
    fields = {"modelCid": compute_cid(model), "recipe": recipe, "holdoutRows": holdout_rows}
    fields["holdoutCommitments"] = [s.commitment for s in shards]
    fields |= spec_fields(options)
    flags = {row.field: row.flag for row in SPEC_OPTIONS}
    for name, kind in inputs.JOB_SPEC:
        if not is_encodable(kind, fields[name]):
            raise BadJobOption(
                f"{flags.get(name, name)} {fields[name]!r} cannot be encoded: the job spec's "
                f"{name} is a {kind}"
            )
    try:
        inputs.CREATE_JOB.encode(**fields)
    except (EncodingError, OverflowError, TypeError, ValueError) as exc:
        raise BadJobOption(f"the job spec cannot be encoded: {exc}") from exc
    return fields


def check_recipe(recipe: str, *, features: int) -> None:
    """Refuse a recipe ``deml train`` could not follow (a field of the wrong type or range,
    z-scoring of the wrong length): the sponsor fixes it now, not every data owner later."""
    try:
        recipe_of(recipe, features=features)
    except BadRecipe as exc:
        raise BadJobOption(f"--recipe: {exc}") from exc


class BadModelSpec(ValueError):
    code: ClassVar[str] = "bad_model"


class BadJobOption(ValueError):
    """Options of ``deml job create`` that do not make a job (reward, shard sizes)."""

    code: ClassVar[str] = "bad_job_option"


_ZOO_FORMS: Final = "logistic:D, linear:D, softmax:D:K, mlp:D,H,...,K, or an .onnx file"


def build_model(spec: str) -> bytes:
    """The initial model: an ONNX file, or a model-zoo graph named like ``logistic:30``."""
    path = Path(spec)
    if spec.endswith(".onnx") or os.sep in spec:
        return path.read_bytes()
    kind, _, shape = spec.partition(":")
    try:
        sizes = [int(part) for part in shape.replace(":", ",").split(",")]
    except ValueError:
        raise BadModelSpec(f"cannot read model {spec!r}: expected {_ZOO_FORMS}") from None
    builders: dict[str, Callable[[], bytes]] = {
        "logistic": lambda: model_zoo.logistic_regression(np.zeros(sizes[0])),
        "linear": lambda: model_zoo.linear_regression(np.zeros(sizes[0])),
        "softmax": lambda: model_zoo.softmax_regression(np.zeros((sizes[0], sizes[-1]))),
        "mlp": lambda: model_zoo.mlp(sizes),
    }
    counts = {"logistic": 1, "linear": 1, "softmax": 2}
    if kind not in builders or (kind in counts and len(sizes) != counts[kind]):
        raise BadModelSpec(f"cannot read model {spec!r}: expected {_ZOO_FORMS}")
    try:
        return builders[kind]()
    except ValueError as exc:
        raise BadModelSpec(f"model {spec!r}: {exc}") from exc


def model_features(model: bytes) -> int:
    """How many input features the model takes (its first weight's rows)."""
    first = next(iter(model_zoo.get_weights(model).values()))
    return int(first.shape[0])


def holdout_shards(
    X: npt.NDArray[np.float32],
    y: npt.NDArray[Any],
    *,
    rows: int,
    rounds: int | None,
) -> list[HoldoutShard]:
    """Split held-out data into ``rounds`` shards of ``rows`` rows (all that fit if None),
    each with a fresh random salt."""
    fit = len(y) // rows
    count = fit if rounds is None else rounds
    if count < 1 or count > fit:
        raise BadJobOption(
            f"{len(y)} held-out rows make {fit} shards of {rows} rows; "
            f"{'asked for ' + str(rounds) if rounds else 'need at least one'}: "
            "give more data, or a smaller --holdout-rows or --rounds"
        )
    shards = []
    for index in range(count):
        part = slice(index * rows, (index + 1) * rows)
        data = shard_bytes(X[part], y[part])
        shards.append(HoldoutShard(index, compute_cid(data), os.urandom(32), data))
    return shards
