"""The hashes that seal a submission or a held-out shard before it is revealed.

A client commits to ``keccak256(abi.encode(modelCid, salt, sender, jobId, round))``: binding
the sender stops anyone from replaying someone else's commitment; the salt stops anyone from
guessing the CID. A sponsor commits to each round's shard with
``keccak256(abi.encode(dataCid, salt))`` when posting the job.
"""

from __future__ import annotations

from eth_abi.abi import encode

from .abi import keccak256


def submission_commitment(
    model_cid: str, salt: bytes, sender: str, job_id: int, round_index: int
) -> bytes:
    return keccak256(
        encode(
            ["string", "bytes32", "address", "uint256", "uint256"],
            [model_cid, salt, sender, job_id, round_index],
        )
    )


def holdout_commitment(data_cid: str, salt: bytes) -> bytes:
    return keccak256(encode(["string", "bytes32"], [data_cid, salt]))
