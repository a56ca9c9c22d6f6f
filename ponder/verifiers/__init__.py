"""Verifiers: each checks a candidate answer and returns a :class:`Verdict`.

A verifier type is one module of this package that registers how it is built from a
job's verifier spec (``{"type": ..., ...}``) and how that spec is checked; see
:mod:`ponder.verifiers.registry`. Each module's docstring documents its spec.
:func:`validate_verifier_spec` runs at submit time (a ValueError becomes a 422 with its
message); :func:`build_verifier` builds the verifier a job runs with. A job without a
spec gets its problem's default (:func:`ponder.families.verifier_for`).

A verifier that calls a model (``llm_judge``, ``reward_model``) implements
:class:`ModelVerifier`: it runs only through the job's Context, asking it for journaled,
budgeted calls (:class:`VerifierContext`).
"""

from __future__ import annotations

from ponder.verifiers.base import (
    JudgeRequest,
    ModelVerifier,
    Verdict,
    Verifier,
    VerifierContext,
)
from ponder.verifiers.registry import (
    build_verifier,
    register,
    validate_verifier_spec,
    verifier_types,
)

__all__ = [
    "JudgeRequest",
    "ModelVerifier",
    "Verdict",
    "Verifier",
    "VerifierContext",
    "build_verifier",
    "register",
    "validate_verifier_spec",
    "verifier_types",
]
