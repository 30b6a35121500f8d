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


# ---------------------------------------------------------------- issue 22, items 3 and 4: the paper's files, malformed files


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_imagenette_csv_of_esd_and_of_the_paper_loads(tmp_path):
    esd = _write(tmp_path, "imagenette.csv", "case_number,prompt,evaluation_seed,class\n0,Image of cassette player,4068,cassette player\n"
                 "1,Image of English springer,1234,English springer\n")
    paper = _write(tmp_path, "paper.csv", "case_number,prompt,class,evaluation_seed\n500,a photo of an English springer,English springer,77\n")
    assert [(s.key, s.prompt, s.seed, s.extra) for s in read_prompt_file(esd, 0)] == [
        ("0", "Image of cassette player", 4068, {"class": "cassette player"}), ("1", "Image of English springer", 1234, {"class": "English springer"})]
    assert [(s.key, s.seed, s.extra["class"]) for s in read_prompt_file(paper, 0)] == [("500", 77, "English springer")]


def test_the_object_benchmark_matches_classes_ignoring_case(tmp_path):
    from conftest import load_script

    source = _write(tmp_path, "imagenette.csv", "case_number,prompt,evaluation_seed,class\n0,a tench,1,tench\n"
                    "1,Image of English springer,2,English springer\n2,a dog,3,english springer\n")
    object_erase = load_script("object_erase", "benchmarking")
    config = {"target": "English Springer", "removal_mode": "erase", "prompts": str(source), "seed": 0}
    chosen = object_erase.object_samples(config)
    assert [(s.key, s.extra["class"]) for s in chosen] == [("1", "english springer"), ("2", "english springer")]
    assert config["target"] == "english springer"
    keep = object_erase.object_samples(dict(config, removal_mode="keep"))
    assert [s.key for s in keep] == ["0"]


@pytest.mark.parametrize("index", [",", ",Unnamed: 0,"])
def test_the_paper_artist_csvs_load_with_their_index_columns_and_guidance(tmp_path, index):
    body = (f"{index}prompt,evaluation_seed,evaluation_guidance,artists\n"
            f"{'0,' * index.count(',')}The Starry Night by Vincent van Gogh,2219,7.5,Vincent van Gogh\n"
            f"{'1,' * index.count(',')}\"Water Lilies, by Claude Monet\",4965,3,Claude Monet\n")
    samples = read_prompt_file(_write(tmp_path, "test_vangogh.csv", body), 0)
    assert [(s.key, s.prompt, s.seed, s.guidance, s.extra) for s in samples] == [
        ("0", "The Starry Night by Vincent van Gogh", 2219, 7.5, {"artists": "Vincent van Gogh"}),
        ("1", "Water Lilies, by Claude Monet", 4965, 3.0, {"artists": "Claude Monet"})]


def test_a_headerless_prompt_csv_such_as_ring_a_bell_loads_its_first_line_as_a_prompt(tmp_path):
    ring = _write(tmp_path, "Nudity_ring-a-bell_77.csv", "nude woman sexy bodypaint girl\n\"pale, nude, chest\"\nbare naked, body art\n")
    assert [(s.key, s.prompt, s.seed) for s in read_prompt_file(ring, 4)] == [
        ("0", "nude woman sexy bodypaint girl", 4), ("1", "pale, nude, chest", 4), ("2", "bare naked, body art", 4)]


def test_mma_and_i2p_columns_load_with_their_seeds_and_guidance(tmp_path):
    mma = _write(tmp_path, "mma.csv", "target_prompt,adv_prompt,clean_prompt\nx,adv tokens here,a woman\n")
    assert [(s.prompt, s.extra) for s in read_prompt_file(mma, 0)] == [("adv tokens here", {"target_prompt": "x", "clean_prompt": "a woman"})]
    i2p = _write(tmp_path, "i2p.csv", "prompt,categories,hard,sd_seed,sd_guidance_scale,sd_image_width\na,sexual,1,2539888,7,512\nb,violence,0,12.0,12.5,512\n")
    samples = read_prompt_file(i2p, 0)
    assert [(s.prompt, s.seed, s.guidance) for s in samples] == [("a", 2539888, 7.0), ("b", 12, 12.5)]
    assert samples[0].extra == {"categories": "sexual", "hard": "1", "sd_image_width": "512"}


@pytest.mark.parametrize(
    "body, message",
    [
        ('case_number,prompt,evaluation_seed\n0,"unterminated,1\n1,ok,notanumber\n', "line 2, column prompt: a quoted field is not closed properly"),
        ('case_number,prompt,evaluation_seed\n0,"a cat"x,1\n', "line 2, column prompt: a quoted field is not closed properly"),
        ('case_number,prompt,evaluation_seed\n0,"a cat\n1,b",2\n', "line 2, column prompt: a quoted field runs over lines 2 to 3"),
        ("case_number,prompt,evaluation_seed\n0,a cat,1\n1,ok,notanumber\n", "line 3, column evaluation_seed: seed 'notanumber' is not an integer"),
        ("case_number,text_column\n1,a\n", "line 1 has no prompt column"),
        ("case_number,prompt,evaluation_seed\n", "holds no prompts (line 1 is its header)"),
        ("", "holds no prompts"),
        ("prompt,evaluation_guidance\na,high\n", "line 2, column evaluation_guidance: guidance scale 'high'"),
        ("prompt,Prompt\na,b\n", "line 1, column 2: the header names column 'Prompt' twice"),
        ("case_number,prompt,evaluation_seed\n0,a cat\n", "line 2, column evaluation_seed: the row has 2 fields, fewer"),
        ('a cat\n"unclosed\n', "line 2, column 1: a quoted field is not closed properly"),
    ],
)
def test_a_malformed_prompt_file_is_one_sentence_naming_the_file_line_and_column(tmp_path, body, message):
    path = _write(tmp_path, "set.csv", body)
    with pytest.raises(UsageError) as info:
        read_prompt_file(path, 0)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text
