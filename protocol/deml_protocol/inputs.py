"""Every advance input the DApp accepts, by ABI signature.

An input payload is ``selector ‖ abi.encode(args)``. Build one with ``WITHDRAW_ETHER.encode(…)``
or with any Ethereum tool (``cast calldata "withdrawEther(uint256)" 1000``). Deposits arrive
through the Cartesi portals instead; their ``execLayerData`` may carry one of these calls,
which then runs on behalf of the depositor. ``docs/protocol.md`` documents each one.
"""

from __future__ import annotations

from typing import Final

from .abi import Method, method

# Ledger
WITHDRAW_ETHER: Final = method("withdrawEther", ("amount", "uint256"))
WITHDRAW_ERC20: Final = method("withdrawERC20", ("token", "address"), ("amount", "uint256"))

# Blob uploads (content addressed: a blob is named by its CID)
BEGIN_BLOB: Final = method("beginBlob", ("cid", "string"), ("size", "uint64"))
PUT_CHUNK: Final = method("putChunk", ("cid", "string"), ("offset", "uint64"), ("data", "bytes"))
ABORT_BLOB: Final = method("abortBlob", ("cid", "string"))
# Storage: anyone frees what nothing needs any more (docs/protocol.md, "Storage")
COLLECT_BLOBS: Final = method("collectBlobs", ("cids", "string[]"))
DROP_UPLOAD: Final = method("dropUpload", ("uploader", "address"), ("cid", "string"))

# Jobs and rounds. The job spec parameters are shared by both ways of posting a job:
# inside a portal deposit (the deposit is the reward) or from an in-app balance.
JOB_SPEC: Final = (
    ("modelCid", "string"),  # initial global model (a stored blob)
    ("recipe", "string"),  # training recipe for clients (opaque to the DApp)
    ("metric", "string"),  # accuracy | log_loss | roc_auc | rmse | mae | r2
    ("holdoutRows", "uint32"),  # most rows a held-out shard may have (work budget)
    ("holdoutCommitments", "bytes32[]"),  # one per round: keccak256(abi.encode(dataCid, salt))
    ("commitSeconds", "uint64"),
    ("holdoutSeconds", "uint64"),
    ("revealSeconds", "uint64"),
    ("minGain", "uint64"),  # score units a model must beat the baseline by
    ("maxSubmissions", "uint32"),  # per round
    ("commitBond", "uint256"),  # per commitment, in the job's asset
    ("payout", "string"),  # how a round's budget is split: proportional | equal
    ("aggregation", "string"),  # how winners make the next model: fedavg | median | trimmed_mean
    ("trimPercent", "uint8"),  # trimmed_mean: % of models cut per weight at each end; else 0
)
CREATE_JOB: Final = method("createJob", *JOB_SPEC)
CREATE_JOB_FROM_BALANCE: Final = method(
    "createJobFromBalance", ("asset", "address"), ("amount", "uint256"), *JOB_SPEC
)
COMMIT_SUBMISSION: Final = method(
    "commitSubmission", ("jobId", "uint256"), ("round", "uint256"), ("commitment", "bytes32")
)
REVEAL_HOLDOUT: Final = method(
    "revealHoldout",
    ("jobId", "uint256"),
    ("round", "uint256"),
    ("dataCid", "string"),
    ("salt", "bytes32"),
)
REVEAL_SUBMISSION: Final = method(
    "revealSubmission",
    ("jobId", "uint256"),
    ("round", "uint256"),
    ("modelCid", "string"),
    ("salt", "bytes32"),
)
CLOSE_ROUND: Final = method("closeRound", ("jobId", "uint256"), ("round", "uint256"))
EVALUATE: Final = method(
    "evaluate", ("modelCid", "string"), ("dataCid", "string"), ("metric", "string")
)

ALL_INPUTS: Final[tuple[Method, ...]] = (
    WITHDRAW_ETHER,
    WITHDRAW_ERC20,
    BEGIN_BLOB,
    PUT_CHUNK,
    ABORT_BLOB,
    COLLECT_BLOBS,
    DROP_UPLOAD,
    CREATE_JOB,
    CREATE_JOB_FROM_BALANCE,
    COMMIT_SUBMISSION,
    REVEAL_HOLDOUT,
    REVEAL_SUBMISSION,
    CLOSE_ROUND,
    EVALUATE,
)
