"""The challenge's official score, per category and per board.

Random Promoter DREAM Challenge 2022 evaluation (Rafi et al. 2024, Nat. Biotechnol.; official
scoring script, Zenodo 7395397):

    Pearson score  = Σ_c w_c · r_c² / 4.65
    Spearman score = Σ_c w_c · ρ_c  / 4.65

over the categories ``all`` (w 1), ``high`` 0.3, ``low`` 0.3, ``yeast`` 0.3, ``random`` 0.3,
``challenging`` 0.5, ``SNVs`` 1.25, ``motif_perturbation`` 0.3, ``motif_tiling`` 0.4. For the pair
categories the correlation is between (alt − ref) of the prediction and (alt − ref) of the truth
(the official script's ``calculate_diff_correlations`` takes ref − alt of both: the same r and ρ).

Every category is a set, as the official script reads it (``np.unique`` of ``pos``; distinct
``(alt_pos, ref_pos)`` tuples). Boards (:func:`~harness.scoring.scorer.board_members`):
``public`` = the public-leaderboard ids (9,045 sequences) and the public category files;
``private`` = everything else (every index in ``public_leaderboard_ids/*.json`` removed: 62,058
sequences) with each single category minus every public index and each pair category minus
exactly the pairs listed in the three public pair files; ``full`` = all 71,103 and every category
whole. With the reconstructed SNV pairs (44,795; the official file has 44,340) autosome.org's final
submission scores 0.819720 / 0.854201 on the private board (official: 0.8184 / 0.8541).

A board on which a category cannot be scored (no SNV pairs known, or fewer than 2 members) is
``partial``: the category counts 0 and the score is not the challenge's.

:mod:`~harness.scoring.bootstrap` gives percentile bootstrap intervals of every category and both
scores, and paired differences between methods on the same draws (:func:`bootstrap_board`).
"""

from .scorer import BOARDS, NORMALISER, WEIGHTS, BoardScore, CategoryScore, board_ids, score, score_boards
from .bootstrap import BoardBootstrap, bootstrap_board
from .predictions import PredictionError, PredictionFile, parse_predictions, read_predictions

__all__ = ["BOARDS", "NORMALISER", "WEIGHTS", "BoardScore", "CategoryScore", "board_ids", "score", "score_boards",
           "PredictionError", "PredictionFile", "parse_predictions", "read_predictions", "BoardBootstrap", "bootstrap_board"]
