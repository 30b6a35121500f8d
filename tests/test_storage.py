"""Atomic writes that never lose the user's files: folder replacement only of what we wrote, the user's
umask, temporary files of killed runs cleared, and the --export_diffusers and step-2 folders built on them."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from conftest import run_script
from utils.errors import UsageError
from utils.storage import OWNER_MARK, atomic_directory, remove_stale_temps, write_text


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_folder_of_the_users_is_refused_and_kept(tmp_path):
    users = tmp_path / "mine"
    users.mkdir()
    (users / "thesis.tex").write_text("years of work")
    with pytest.raises(UsageError, match="did not write"):
        with atomic_directory(users) as tmp:
            (tmp / "x").write_text("new")
    assert (users / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporary folder left behind


def test_our_folder_is_replaced_whole_but_not_once_the_user_added_a_file(tmp_path):
    out = tmp_path / "export"
    with atomic_directory(out) as tmp:
        (tmp / "a.json").write_text("1")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.bin").write_text("2")
    assert (out / OWNER_MARK).is_file()
    with atomic_directory(out) as tmp:  # a previous export of ours: replaced
        (tmp / "c.json").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == sorted([OWNER_MARK, "c.json"])
    (out / "notes.txt").write_text("the user's")
    with pytest.raises(UsageError, match="notes.txt"):
        with atomic_directory(out) as tmp:
            pass
    assert (out / "notes.txt").read_text() == "the user's" and (out / "c.json").is_file()


@pytest.mark.parametrize("target", [".", "..", "file"])
def test_the_working_folder_its_parents_and_files_are_refused(tmp_path, monkeypatch, target):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError):
        with atomic_directory(target):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file"]


def test_folders_and_files_follow_the_users_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_directory(tmp_path / "out") as tmp:
            (tmp / "sub").mkdir()
            (tmp / "sub" / "w.bin").write_bytes(b"1")
            os.chmod(tmp / "sub" / "w.bin", 0o600)  # as safetensors writes its files
        write_text(tmp_path / "c.yaml", "a: 1\n")
    finally:
        os.umask(old)
    assert mode(tmp_path / "out") == mode(tmp_path / "out" / "sub") == 0o750
    assert mode(tmp_path / "out" / "sub" / "w.bin") == mode(tmp_path / "c.yaml") == 0o640


def test_temporary_files_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    # a writer killed during its save leaves ".<name>.<host>-<pid>.<random>.tmp"; its pid no longer runs
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    from utils.storage import _host

    here = _host()
    leftover = tmp_path / f".metrics.json.{here}-{dead}.abc123.tmp"
    leftover.write_text("half")
    leftover_dir = tmp_path / f".metrics.json.{here}-{dead}.def456.tmp"
    leftover_dir.mkdir()
    alive = tmp_path / f".metrics.json.{here}-{os.getppid()}.ghi789.tmp"  # a live writer's file is left alone
    alive.write_text("in progress")
    elsewhere = tmp_path / f".metrics.json.other-host-{dead}.mno345.tmp"  # another machine's writer: judged by age only
    elsewhere.write_text("in progress there")
    old_elsewhere = tmp_path / f".metrics.json.other-host-{dead}.pqr678.tmp"
    old_elsewhere.write_text("abandoned there")
    os.utime(old_elsewhere, (0, 0))
    other = tmp_path / f".other.json.{here}-{dead}.jkl012.tmp"  # another target's: not this write's business
    other.write_text("x")
    write_text(tmp_path / "metrics.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["metrics.json", alive.name, elsewhere.name, other.name])
    assert remove_stale_temps(tmp_path / "other.json") == [other]


def test_export_refuses_a_folder_of_the_users_before_any_work(mini_sd_dir, tmp_path, monkeypatch, capsys):
    res = tmp_path / "results"
    users = tmp_path / "work"
    users.mkdir()
    (users / "data.csv").write_text("1,2\n")
    common = ["--model_id", str(mini_sd_dir), "--num_inference_steps", "2", "--res_path", str(res), "--target", "parachute"]
    for folder in (str(users), "."):
        monkeypatch.chdir(users)
        with pytest.raises(SystemExit) as exit_info:
            run_script("save_union_over_time", common + ["--export_diffusers", folder])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --export_diffusers folder") and err.count("\n") == 1
    assert sorted(p.name for p in users.iterdir()) == ["data.csv"] and not res.exists()  # refused before recording anything


def test_export_replaces_its_own_previous_export_with_the_users_umask(mini_sd_dir, tmp_path, monkeypatch):
    from diffusers import UNet2DConditionModel

    monkeypatch.chdir(tmp_path)
    common = ["--model_id", str(mini_sd_dir), "--num_inference_steps", "2", "--res_path", "results", "--targets", "Da Vinci", "--timesteps", "1"]
    old = os.umask(0o022)
    try:
        run_script("multi_concept_union", common + ["--export_diffusers", "exported"])
        run_script("multi_concept_union", common + ["--skill_ratio", "0.5", "--export_diffusers", "exported"])  # ours: replaced
    finally:
        os.umask(old)
    assert mode(tmp_path / "exported") == 0o755
    assert all(mode(p) == 0o644 for p in (tmp_path / "exported").iterdir())
    unet = UNet2DConditionModel.from_pretrained("exported")
    weight = dict(unet.named_modules())["down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2"].weight
    assert (weight == 0).float().mean() > 0.05  # the second export's (skill_ratio 0.5) weights


def test_step_2_replaces_its_folder_so_no_image_of_an_earlier_run_stays(mini_sd_dir, tmp_path, prompt_files, capsys):
    res = tmp_path / "results"
    base, target = prompt_files(["a room", "a field", "a street"], ["a parachute in a room", "a parachute in a field", "a parachute in a street"])
    common = ["--model_id", str(mini_sd_dir), "--num_inference_steps", "2", "--res_path", str(res), "--target", "parachute",
              "--base_prompts", base, "--target_prompts", target, "--timesteps", "1"]
    run_script("remove_neurons", common + ["--num_images", "3"])
    folder = res / "mini-sd" / "parachute" / "removal" / "sr0.01_tau1_sel0"
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "pair_000.png", "pair_001.png", "pair_002.png"]
    run_script("remove_neurons", common + ["--num_images", "1"])
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "pair_000.png"]
    assert "num_images: 1\n" in (folder / "config.yaml").read_text()
    (folder / "my_notes.txt").write_text("keep")
    with pytest.raises(SystemExit):
        run_script("remove_neurons", common + ["--num_images", "2"])
    assert "my_notes.txt" in capsys.readouterr().err and (folder / "my_notes.txt").is_file()
