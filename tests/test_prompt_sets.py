"""Prompt sets: case numbers that become file names, seeds, encodings (issue 21, items 2, 6 and 7)."""
from __future__ import annotations

import pytest

from utils.errors import UsageError
from utils.prompt_sets import MAX_SEED, Sample, expand_seeds, read_prompt_file


@pytest.mark.parametrize("case", ["../../escape", "/tmp/absolute", "a/b", "two words", ".hidden", "..", "x" * 101, "snow\u2603"])
def test_a_case_number_that_is_not_a_plain_file_name_is_refused_with_its_row(tmp_path, case):
    prompts = tmp_path / "set.csv"
    prompts.write_text(f"case_number,prompt\nok-1,a cat\n{case},a dog\n", encoding="utf-8")
    with pytest.raises(UsageError, match="set.csv line 3, column case_number: case_number") as info:
        read_prompt_file(prompts, 0)
    assert "\n" not in str(info.value)


def test_plain_case_numbers_are_kept_and_case_insensitive_repeats_refused(tmp_path):
    prompts = tmp_path / "set.csv"
    prompts.write_text("case_number,prompt\n7,a\nA-1.b_2,b\n")
    assert [s.key for s in read_prompt_file(prompts, 0)] == ["7", "A-1.b_2"]
    prompts.write_text("case_number,prompt\nAb,a\naB,b\n")
    with pytest.raises(UsageError, match="line 3, column case_number: repeats case_number aB"):
        read_prompt_file(prompts, 0)


@pytest.mark.parametrize("seed", ["inf", "-inf", "nan", "1e30", "-1", "1.5", str(MAX_SEED + 1), "12abc"])
def test_a_seed_that_is_not_a_whole_number_in_range_is_refused_with_its_row(tmp_path, seed):
    prompts = tmp_path / "set.csv"
    prompts.write_text(f"prompt,evaluation_seed\na cat,3\na dog,{seed}\n")
    with pytest.raises(UsageError, match=r"set.csv line 3, column evaluation_seed: seed .* fix the file's seed column"):
        read_prompt_file(prompts, 0)


def test_whole_number_seeds_and_empty_cells(tmp_path):
    prompts = tmp_path / "set.csv"
    prompts.write_text(f"prompt,evaluation_seed\na,42.0\nb,\nc,{MAX_SEED}\nd,0\n")
    assert [s.seed for s in read_prompt_file(prompts, 9)] == [42, 9, MAX_SEED, 0]


def test_seeds_over_the_range_after_expanding_are_refused():
    sample = Sample(0, "0", "0", "a cat", 0)
    with pytest.raises(UsageError, match=f"seed {MAX_SEED + 1} is outside"):
        expand_seeds([sample], [MAX_SEED, MAX_SEED + 1])


def test_a_binary_prompt_file_is_one_sentence(tmp_path):
    for name in ("set.txt", "set.csv"):
        binary = tmp_path / name
        binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00garbage")
        with pytest.raises(UsageError, match="not UTF-8 text") as info:
            read_prompt_file(binary, 0)
        assert "\n" not in str(info.value)
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"a cat\x00\x00\n")
    with pytest.raises(UsageError, match="NUL bytes"):
        read_prompt_file(nul, 0)


def test_a_byte_order_mark_is_not_part_of_the_first_prompt_or_column(tmp_path):
    text = tmp_path / "set.txt"
    text.write_bytes("\ufefffirst prompt\nsecond\n".encode("utf-8"))
    assert [s.prompt for s in read_prompt_file(text, 0)] == ["first prompt", "second"]
    table = tmp_path / "set.csv"
    table.write_bytes("\ufeffcase_number,prompt,evaluation_seed\n5,a cat,7\n".encode("utf-8"))
    [sample] = read_prompt_file(table, 0)
    assert (sample.key, sample.prompt, sample.seed, sample.extra) == ("5", "a cat", 7, {})


def test_a_mistyped_seed_count_is_refused_or_cut_by_the_limit():
    from utils.prompt_sets import MAX_SAMPLES

    sample = Sample(0, "0", "0", "a cat", 0)
    with pytest.raises(UsageError, match="pass a smaller --num_seeds or a --limit"):
        expand_seeds([sample], range(0, MAX_SAMPLES + 1))
    assert [s.key for s in expand_seeds([sample, Sample(1, "1", "1", "a dog", 0)], range(0, 10**9), limit=3)] == ["0_s0", "0_s1", "0_s2"]
