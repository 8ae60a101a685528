"""The command line as a user types it."""

import json
import subprocess
import sys

import numpy as np
from click.testing import CliRunner

from harness.cli import main


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def test_score_json_reproduces_published_public_scores(real_data):
    result = invoke("score", real_data / "reference_predictions" / "camformers_public.json", "--data", real_data, "--json")
    assert result.exit_code == 0, result.output
    assert "holds exactly the 9,045 public-leaderboard ids: scored on the public board only" in result.stderr
    out = json.loads(result.stdout)
    assert out["partial"] is False and list(out["boards"]) == ["public"]
    board = out["boards"]["public"]
    assert (round(board["pearson_score"], 3), round(board["spearman_score"], 3)) == (0.763, 0.823)
    assert board["categories"]["SNVs"]["n"] == 4670 and board["partial"] is False and board["missing"] == []
    assert board["snv_source"].startswith("public leaderboard SNV pairs only")
    assert set(board["categories"]["high"]) == {"n", "pearson", "spearman"}


def test_score_all_boards_and_refusals(real_data, tmp_path):
    pred = real_data / "reference_predictions" / "autosome_org_final.txt"
    result = invoke("score", pred, "--data", real_data, "--snv-pairs", real_data / "reconstructed" / "all_SNVs_seqs.csv")
    assert result.exit_code == 0, result.output
    assert "private board" in result.output and "0.8290" in result.output and "44795 pairs" in result.output
    assert "PARTIAL" not in result.output
    public_only = real_data / "reference_predictions" / "bhi_public.json"
    refused = CliRunner().invoke(main, ["score", str(public_only), "--data", str(real_data), "--board", "private"])
    assert refused.exit_code == 1 and "9,045 of 71,103 test indices given" in refused.output
    assert "private board: 62,058 test indices have no prediction: 0, 1, 4, 6, 8," in refused.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"0": 1.0,')
    refused = CliRunner().invoke(main, ["score", str(bad), "--data", str(real_data)])
    assert refused.exit_code == 1 and "bad.json: invalid JSON prediction file (1 problem)" in refused.output
    assert "line 1, column 11: not valid JSON" in refused.output


def _full_json(real_data, tmp_path, edit):
    values = {str(i): float(v) for i, v in enumerate(np.loadtxt(real_data / "reference_predictions" / "autosome_org_final.txt",
                                                                usecols=1, dtype=np.float64))}
    edit(values)
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(values))
    return path


def test_score_refuses_a_missing_or_nonfinite_private_id(real_data, tmp_path):
    """One private id missing, or one NaN/inf value: exit 1 naming the ids, unless --board public."""
    snv = real_data / "reconstructed" / "all_SNVs_seqs.csv"
    private_id = 4  # 0, 1, 4, 6, 8 are not public ids; 2, 3, 5, 7 are
    missing = _full_json(real_data, tmp_path, lambda v: v.pop(str(private_id)))
    result = CliRunner().invoke(main, ["score", str(missing), "--data", str(real_data), "--snv-pairs", str(snv)])
    assert result.exit_code == 1
    assert f"private board: 1 test index has no prediction: {private_id}" in result.output
    assert f"full board: 1 test index has no prediction: {private_id}" in result.output
    ok = invoke("score", missing, "--data", real_data, "--board", "public", "--json")
    assert ok.exit_code == 0 and round(json.loads(ok.stdout)["boards"]["public"]["pearson_score"], 4) == 0.8290

    def poison(values):
        values["6"], values["8"] = float("nan"), float("inf")
    nonfinite = _full_json(real_data, tmp_path, poison)
    result = CliRunner().invoke(main, ["score", str(nonfinite), "--data", str(real_data), "--snv-pairs", str(snv)])
    assert result.exit_code == 1 and "private board: 2 predictions are not finite: 6 (nan), 8 (inf)" in result.output
    assert invoke("score", nonfinite, "--data", real_data, "--board", "public").exit_code == 0

    overwrite = tmp_path / "overwrite.json"
    overwrite.write_text(missing.read_text()[:-1] + f', "0{private_id}": 1.0}}')
    result = CliRunner().invoke(main, ["score", str(overwrite), "--data", str(real_data), "--board", "public"])
    assert result.exit_code == 1 and f"key '0{private_id}' is not a test index" in result.output


def test_score_without_snv_pairs_is_loudly_partial(real_data):
    pred = real_data / "reference_predictions" / "autosome_org_final.txt"
    result = invoke("score", pred, "--data", real_data, "--json")
    assert result.exit_code == 0, result.output
    for board in ("private", "full"):
        assert f"warning: PARTIAL {board} board: cannot score SNVs" in result.stderr
    assert "PARTIAL public" not in result.stderr
    out = json.loads(result.stdout)
    assert out["partial"] is True
    assert out["boards"]["public"]["partial"] is False
    for board in ("private", "full"):
        assert out["boards"][board]["partial"] is True and out["boards"][board]["missing"] == ["SNVs"]
        assert "SNVs" not in out["boards"][board]["categories"]


def test_methods_list_shows_builtins():
    result = invoke("methods", "list")
    assert result.exit_code == 0, result.output
    for name in ("kmer-ridge", "kmer-lgbm", "camformers"):
        assert name in result.output
    assert "16,611,073" in result.output  # Camformers paper parameter count
    assert "2,773" in result.output and "sklearn" in result.output  # kmer-ridge: the count of its paper (default) config


def test_methods_new_scaffolds(tmp_path):
    result = invoke("methods", "new", "my-net", "--dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "harness-my-net" / "harness_my_net" / "method.py").is_file()


def test_main_job_on_simulated_default(tmp_path, simulated_dir):
    """`harness run` with no data: the k-mer baselines on simulated data, said plainly."""
    env = {"HARNESS_CACHE": str(simulated_dir.parent), "HARNESS_DATA": ""}
    result = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "run"), "--profile", "cpu"], env=env)
    assert result.exit_code == 0, result.output
    assert "SIMULATED" in result.output
    scores = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    assert set(scores) == {"kmer-ridge", "kmer-lgbm"}
    for method in scores.values():
        assert method["boards"]["private"]["pearson_score"] > 0.1  # planted motifs are learnable
    assert np.isfinite(np.load(tmp_path / "run" / "methods" / "kmer-ridge" / "test.npy")).all()


# ----- the command package: lazy commands, a light `harness --help` ---------------------------------
def test_every_command_loads_and_its_help_line_is_its_own():
    """`harness --help` lists the commands from harness.cli.COMMANDS without importing them: each
    line there must be the command's own short_help, and each entry must name the command."""
    import click

    from harness.cli import COMMANDS

    ctx = click.Context(main)
    assert main.list_commands(ctx) == sorted(COMMANDS)
    for name, entry in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command.name == name and command.short_help == entry.help, name
    result = invoke("--help")
    for name, entry in COMMANDS.items():
        assert any(line.split() == [name, *entry.help.split()] for line in result.output.splitlines()), name


def test_help_imports_no_command_module():
    """`harness --help` used to import every command's domain modules (NumPy, pandas, ...: ~0.5-2 s);
    now it imports click and harness.cli only, and a command imports only its own module."""
    code = ("import sys; from harness.cli import main\n"
            "try: main(['--help'])\nexcept SystemExit: pass\n"
            "print('IMPORTED', sorted(m for m in sys.modules if m.startswith('harness.') or m in ('numpy', 'pandas', "
            "'rich')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "IMPORTED ['harness.cli']", out
    assert "validate-submission  Check a submission file." in out


def test_commands_that_fail_as_expected_exit_1_with_one_line():
    """friendly_errors (harness.cli.errors): a DataError / ProfileError is a one-line message, exit 1."""
    result = CliRunner().invoke(main, ["run", "--methods", "kmer-ridge", "--profile", "nope",
                                       "--out", "/nonexistent/x"])
    assert result.exit_code == 1 and "kmer-ridge has no profile 'nope'" in result.output
    assert "Traceback" not in result.output
