"""Published challenge scores: reference numbers for submissions whose predictions are not here.

The numbers live in ``harness/scoring/published.toml`` (shipped with the package), each with its
source. They are shown by ``harness leaderboard --reference`` as reference rows marked as published
numbers (not ranked: this harness did not score them, so they get no interval and no paired
difference), or, when the same submission's prediction file is among the reference predictions,
as a note beside the score this harness computes from that file.

A published board is the challenge's: its SNV category used the official ``all_SNVs_seqs.csv``
(44,340 pairs), so it can differ slightly from a score computed here with the reconstructed pairs.
"""

from __future__ import annotations

import importlib.resources
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pydantic

from .scorer import BOARDS, WEIGHTS, BoardScore, CategoryScore

#: The file :func:`load_published` reads by default (inside this package).
PUBLISHED_FILE = "published.toml"

_Correlation = pydantic.confloat(ge=-1.0, le=1.0, allow_inf_nan=False)


class _Category(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
    n: pydantic.conint(ge=2)
    pearson: _Correlation
    spearman: _Correlation


class _Record(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)
    team: pydantic.constr(min_length=1)
    board: Literal[BOARDS]  # type: ignore[valid-type]
    pearson_score: _Correlation
    spearman_score: _Correlation
    decimals: pydantic.conint(ge=1, le=6)
    source: pydantic.constr(min_length=1)
    placing: str = ""
    prediction_file: str = ""
    snv_pairs: pydantic.conint(ge=2) | None = None
    categories: dict[Literal[tuple(WEIGHTS)], _Category] = {}  # type: ignore[valid-type]


@dataclass(frozen=True)
class PublishedScore:
    """One published board score of one submission.

    Attributes:
        team: the team's name as the challenge listed it.
        board: ``"public"``, ``"private"`` or ``"full"`` (:data:`harness.scoring.BOARDS`).
        pearson_score, spearman_score: the reported Σ w·r² / 4.65 and Σ w·ρ / 4.65.
        decimals: how many decimals the source printed (the numbers are shown that way).
        source: where the numbers are printed (write-up section, leaderboard).
        placing: the placing as the source states it, e.g. ``"1st"`` (``""`` when not given).
        prediction_file: the stem of the same submission's file among the reference predictions
            (``""``: none), e.g. ``"autosome_org_final"``.
        snv_pairs: SNV pairs behind the SNV category (44,340 for the official file), or None.
        categories: category -> :class:`~harness.scoring.CategoryScore` as reported (may be empty).
    """

    team: str
    board: str
    pearson_score: float
    spearman_score: float
    decimals: int
    source: str
    placing: str = ""
    prediction_file: str = ""
    snv_pairs: int | None = None
    categories: dict[str, CategoryScore] = field(default_factory=dict)

    def text(self, value: float) -> str:
        """``value`` with the source's decimals, e.g. ``0.860`` (never ``0.86`` or ``0.8600``)."""
        return f"{value:.{self.decimals}f}"

    @property
    def scores_text(self) -> str:
        """``"0.8184 / 0.8541"``: Pearson score / Spearman score as published."""
        return f"{self.text(self.pearson_score)} / {self.text(self.spearman_score)}"

    def board_score(self) -> BoardScore:
        """The published numbers as a :class:`~harness.scoring.BoardScore` (a whole score: the
        challenge scored every category; categories the source does not list are absent)."""
        if self.board == "public":
            snv = "official public-board SNV pairs, as published"
        else:
            pairs = f"{self.snv_pairs:,} pairs" if self.snv_pairs else "pair count not stated"
            snv = f"official all_SNVs_seqs.csv ({pairs}), as published"
        return BoardScore(self.board, self.pearson_score, self.spearman_score, dict(self.categories), snv)


def load_published(path: str | Path | None = None) -> list[PublishedScore]:
    """The published scores in ``path`` (default: the shipped :data:`PUBLISHED_FILE`).

    Returns:
        One :class:`PublishedScore` per ``[[entry]]``, in file order.

    Raises:
        ValueError: the file is not TOML, has no ``[[entry]]`` list, or an entry breaks the
            schema (unknown field or category, a board not in ``public``/``private``/``full``, a
            correlation outside [-1, 1], no source) or repeats a team and board; the message names
            the file, the entry's number and team, and the field.
        OSError: the file cannot be read.
    """
    resource = Path(path) if path is not None else importlib.resources.files(__package__) / PUBLISHED_FILE
    name = str(path) if path is not None else f"harness/scoring/{PUBLISHED_FILE}"
    try:
        doc = tomllib.loads(resource.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{name}: not valid TOML ({exc})") from None
    entries = doc.get("entry")
    if set(doc) != {"entry"} or not isinstance(entries, list):
        raise ValueError(f"{name}: expected only an [[entry]] list (got keys {sorted(doc)})")
    out: list[PublishedScore] = []
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(entries, 1):
        team = raw.get("team", "?") if isinstance(raw, dict) else "?"
        try:
            rec = _Record.model_validate(raw)
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "entry"
            raise ValueError(f"{name}: entry {i} ({team}): {where}: {err['msg'].lower()}") from None
        if (rec.team, rec.board) in seen:
            raise ValueError(f"{name}: entry {i} ({team}): a second {rec.board} board entry for this team")
        seen.add((rec.team, rec.board))
        cats = {c: CategoryScore(v.n, v.pearson, v.spearman) for c, v in rec.categories.items()}
        out.append(PublishedScore(rec.team, rec.board, rec.pearson_score, rec.spearman_score, rec.decimals,
                                  rec.source, rec.placing, rec.prediction_file, rec.snv_pairs, cats))
    return out
