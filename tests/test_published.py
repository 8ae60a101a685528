"""Published challenge scores (harness/scoring/published.toml): schema, sources, and the reported
per-category numbers agree with the reported board scores under the official weights."""

from __future__ import annotations

import pytest

from harness.scoring import BOARDS, NORMALISER, WEIGHTS
from harness.scoring.published import load_published

PUBLISHED = load_published()


def test_every_published_score_names_its_source_and_board():
    assert PUBLISHED, "the shipped file lists published scores"
    for pub in PUBLISHED:
        assert pub.board in BOARDS and len(pub.source) > 20
        assert pub.board_score().partial is False  # a published score is a whole one
    teams = {(p.team, p.board): p for p in PUBLISHED}
    assert teams[("autosome.org", "private")].scores_text == "0.8184 / 0.8541"
    assert teams[("autosome.org", "public")].scores_text == "0.829 / 0.860"  # the source's decimals, kept
    assert teams[("Camformers", "public")].scores_text == "0.763 / 0.823"


@pytest.mark.parametrize("pub", [p for p in PUBLISHED if set(p.categories) == set(WEIGHTS)],
                         ids=lambda p: f"{p.team}-{p.board}")
def test_reported_categories_give_the_reported_scores(pub):
    """Σ w·r² / 4.65 and Σ w·ρ / 4.65 of the printed r and ρ (rounded to ``decimals``) land on the
    printed scores: each printed r is within half a unit of the last decimal, which moves the
    Pearson score by at most Σ w·(2|r|·h + h²) / 4.65 and the Spearman score by h."""
    h = 0.5 * 10 ** -pub.decimals
    pearson = sum(WEIGHTS[c] * v.pearson ** 2 for c, v in pub.categories.items()) / NORMALISER
    spearman = sum(WEIGHTS[c] * v.spearman for c, v in pub.categories.items()) / NORMALISER
    slack = sum(WEIGHTS[c] * (2 * abs(v.pearson) * h + h * h) for c, v in pub.categories.items()) / NORMALISER
    assert abs(pearson - pub.pearson_score) <= slack + h
    assert abs(spearman - pub.spearman_score) <= 2 * h
    if pub.board == "full":
        assert pub.categories["all"].n == 71103


@pytest.mark.parametrize("body, message", [
    ("[[entry]]\nteam='T'\nboard='privat'\npearson_score=0.5\nspearman_score=0.5\ndecimals=3\nsource='x'\n",
     "entry 1 (T): board: input should be 'public', 'private' or 'full'"),
    ("[[entry]]\nteam='T'\nboard='full'\npearson_score=1.2\nspearman_score=0.5\ndecimals=3\nsource='x'\n",
     "entry 1 (T): pearson_score: input should be less than or equal to 1"),
    ("[[entry]]\nteam='T'\nboard='full'\npearson_score=0.5\nspearman_score=0.5\ndecimals=3\n",
     "entry 1 (T): source: field required"),
    ("[[entry]]\nteam='T'\nboard='full'\npearson_score=0.5\nspearman_score=0.5\ndecimals=3\nsource='x'\nrank=1\n",
     "entry 1 (T): rank: extra inputs are not permitted"),
    ("[[entry]]\nteam='T'\nboard='full'\npearson_score=0.5\nspearman_score='0.5'\ndecimals=3\nsource='x'\n",
     "entry 1 (T): spearman_score: input should be a valid number"),
    (("[[entry]]\nteam='T'\nboard='full'\npearson_score=0.5\nspearman_score=0.5\ndecimals=3\nsource='x'\n"
      "categories.SNV = {n=10, pearson=0.5, spearman=0.5}\n"), "entry 1 (T): categories.SNV"),
    ("[[entry]]\nteam='T'\nboard='full'\npearson_score=0.5\nspearman_score=0.5\ndecimals=3\nsource='x'\n" * 2,
     "entry 2 (T): a second full board entry for this team"),
    ("[entry]\nteam='T'\n", "expected only an [[entry]] list"),
    ("[[entry]\n", "not valid TOML"),
])
def test_a_bad_file_is_refused_naming_the_entry_and_field(tmp_path, body, message):
    path = tmp_path / "published.toml"
    path.write_text(body)
    with pytest.raises(ValueError) as err:
        load_published(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
