"""The challenge's official score, per category and per board.

Random Promoter DREAM Challenge 2022 evaluation (Rafi et al. 2024, Nat. Biotechnol.; official
scoring script, Zenodo 7395397):

    Pearson score  = Σ_c w_c · r_c² / 4.65
    Spearman score = Σ_c w_c · ρ_c  / 4.65

over the categories ``all`` (w 1), ``high`` 0.3, ``low`` 0.3, ``yeast`` 0.3, ``random`` 0.3,
``challenging`` 0.5, ``SNVs`` 1.25, ``motif_perturbation`` 0.3, ``motif_tiling`` 0.4. For the pair
categories the correlation is between (alt − ref) of the prediction and (alt − ref) of the truth.

Boards: ``public`` = the public-leaderboard ids (9,045 sequences), ``private`` = everything else
(every index in ``public_leaderboard_ids/*.json`` removed: 62,058 sequences), ``full`` = all 71,103.

Pairs on the private board: a pair is dropped when both its members are public. Dropping it when
either member is public would empty motif_perturbation and motif_tiling, whose shared reference
sequences are public; with this rule and the reconstructed SNV pairs, autosome.org's final
submission scores 0.8196 / 0.8543 (data README: 0.8197 / 0.8542; official, with the unpublished
44,340 SNV pairs: 0.8184 / 0.8541).
"""

from .scorer import BOARDS, NORMALISER, WEIGHTS, BoardScore, CategoryScore, score, score_boards
from .predictions import PredictionError, read_predictions

__all__ = ["BOARDS", "NORMALISER", "WEIGHTS", "BoardScore", "CategoryScore", "score", "score_boards",
           "PredictionError", "read_predictions"]
