from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.data.collate import collate_train_batch
from benchmark.data.dataset import ItemFeatures, left_pad, split_leave_one_out
from benchmark.data.synthetic import ensure_synthetic
from benchmark.errors import DatasetError
from benchmark.formats.amazon_iisan import read_amazon_iisan
from benchmark.modalities.item_files import load_images

OPTIONS = {
    "users": 30,
    "items": 40,
    "clusters": 4,
    "min_len": 5,
    "max_len": 9,
    "image_size": 16,
    "stay_prob": 0.85,
    "seed": 3,
}


def test_synthetic_is_deterministic_and_in_amazon_layout(tmp_path):
    directory = ensure_synthetic(OPTIONS)
    assert (directory / "items.tsv").is_file() and (directory / "users.tsv").is_file()
    assert len(list((directory / "images").glob("*.jpg"))) == 40
    from benchmark.data.synthetic import write_synthetic

    again = tmp_path / "again"
    write_synthetic(again, OPTIONS)
    assert (again / "users.tsv").read_text() == (directory / "users.tsv").read_text()
    assert (again / "items.tsv").read_text() == (directory / "items.tsv").read_text()
    raw = read_amazon_iisan(directory)
    assert raw.n_items == 40 and len(raw.sequences) == 30
    assert all(5 <= len(s) <= 9 for s in raw.sequences)
    pixels = load_images(raw, 8)
    assert pixels.shape == (41, 3, 8, 8) and pixels.dtype == torch.uint8 and pixels[0].sum() == 0


def test_synthetic_users_follow_clusters():
    raw = read_amazon_iisan(ensure_synthetic(OPTIONS))
    # Items of one cluster share title words; consecutive items mostly share a cluster.
    words = {i + 1: set(t.split()) for i, t in enumerate(raw.titles)}
    shared = [len(words[a] & words[b]) > 0 for s in raw.sequences for a, b in zip(s, s[1:])]
    assert np.mean(shared) > 0.6


def write_layout(directory, items: str, users: str, images=("a", "b", "c", "d")):
    from PIL import Image

    (directory / "images").mkdir(parents=True)
    (directory / "items.tsv").write_text(items)
    (directory / "users.tsv").write_text(users)
    for key in images:
        Image.new("RGB", (4, 4), (10, 20, 30)).save(directory / "images" / f"{key}.jpg")
    return directory


def test_bad_rows_are_reported_with_file_and_line(tmp_path):
    directory = write_layout(tmp_path / "d", "a\tfirst\nb\tsecond\tEXTRA\na\tagain\nc\t \n", "u1\ta b c\n")
    with pytest.raises(DatasetError) as caught:
        read_amazon_iisan(directory)
    message = str(caught.value)
    assert "3 problem(s)" in message
    assert f"{directory / 'items.tsv'}:2: expected 2 tab-separated fields" in message
    assert f"{directory / 'items.tsv'}:3: duplicate item id 'a'" in message
    assert f"{directory / 'items.tsv'}:4: empty title for item 'c'" in message


def test_unknown_item_in_sequence(tmp_path):
    directory = write_layout(tmp_path / "d", "a\tx\nb\ty\n", "u1\ta b\nu2\ta zz b\n")
    with pytest.raises(DatasetError, match=r"users.tsv:2: unknown item id 'zz'"):
        read_amazon_iisan(directory)


def test_missing_images_are_counted_not_zeroed(tmp_path):
    directory = write_layout(tmp_path / "d", "a\tx\nb\ty\nq\tz\n", "u1\ta b q\n", images=("a",))
    raw = read_amazon_iisan(directory)
    with pytest.raises(DatasetError, match=r"2 of 3 items have no image.*b, q"):
        load_images(raw, 8)


def test_unreadable_image_names_the_file(tmp_path):
    directory = write_layout(tmp_path / "d", "a\tx\n", "u1\ta a a\n")
    (directory / "images" / "a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"a.jpg: unreadable image for item 'a'"):
        load_images(read_amazon_iisan(directory), 8)


def test_leave_one_out_split(tmp_path):
    users = "u1\ta b c d\nu2\tb c\nu3\td c b\nu4\td c b a d\n"
    directory = write_layout(tmp_path / "d", "a\tx\nb\ty\nc\tz\nd\tw\n", users)
    split = split_leave_one_out(read_amazon_iisan(directory), max_seq_len=2)
    # u1: train [a b] -> 1 pair; valid history [a b] target c; test history [b c] target d
    # u4: train [d c b] -> the last max_seq_len + 1; valid history [c b] target a; test history [b a] target d
    assert [s.tolist() for s in split.train_sequences] == [[1, 2], [4, 3, 2]]
    assert [h.tolist() for h in split.valid_history] == [[1, 2], [3, 2]]
    assert split.valid_target.tolist() == [3, 1]
    assert [h.tolist() for h in split.test_history] == [[2, 3], [2, 1]]
    assert split.test_target.tolist() == [4, 4]
    # u2 and u3 are shorter than the rule's 4 items (3 would give validation and test but nothing to train on)
    assert split.dropped_users == 2
    assert split.item_counts.tolist() == [0, 1, 2, 1, 1]


def test_one_sequence_length_rule_everywhere(tmp_path):
    """Import, inspect, the split (and so validate and the cell) apply the same minimum: a dataset of 3-item users
    was imported, then refused by every suite ("4+ items")."""
    from benchmark.data.sequence_rule import MIN_SEQUENCE_LENGTH
    from benchmark.formats.importer import import_dataset, inspect_dataset

    assert MIN_SEQUENCE_LENGTH == 4
    directory = write_layout(tmp_path / "d", "a\tx\nb\ty\nc\tz\nd\tw\n", "u1\ta b c\nu2\tb c d\n")
    with pytest.raises(DatasetError, match="fewer than the minimum 4"):
        import_dataset(directory, "amazon-iisan", tmp_path / "out")
    with pytest.raises(DatasetError, match="no user is left"):
        import_dataset(directory, "amazon-iisan", tmp_path / "out", on_error="skip")
    with pytest.raises(DatasetError, match="--min-seq-len 3 is below the rule: a user needs at least 4 items"):
        import_dataset(directory, "amazon-iisan", tmp_path / "out", min_seq_len=3)
    report = inspect_dataset(directory, "amazon-iisan")
    assert not report["usable"] and report["problems"]["by_kind"] == {"too short": 2, "unusable dataset": 1}
    with pytest.raises(DatasetError, match="no user of 2 has 4 items"):
        split_leave_one_out(read_amazon_iisan(directory), 5)


def test_left_pad_and_batches():
    assert left_pad([np.array([5, 6, 7]), np.array([9])], 2).tolist() == [[6, 7], [0, 9]]


def test_collate_encodes_positions_or_unique_items():
    sequences = torch.tensor([[0, 3, 4], [3, 5, 3]])
    features = ItemFeatures({"text_ids": torch.arange(6).unsqueeze(1) * 10})
    positions = collate_train_batch(sequences, features, unique_items=False)
    assert positions.encoded_ids.tolist() == [3, 4, 3, 5, 3]
    assert positions.position_index.tolist() == [[-1, 0, 1], [2, 3, 4]]
    assert positions.features["text_ids"].squeeze(1).tolist() == [30, 40, 30, 50, 30]
    unique = collate_train_batch(sequences, features, unique_items=True)
    assert unique.encoded_ids.tolist() == [3, 4, 5]
    assert unique.encoded_ids[unique.position_index.clamp(min=0)].tolist() == [[3, 3, 4], [3, 5, 3]]


@pytest.mark.parametrize("workers", [0, 2])
def test_train_batches_cover_every_sequence_once_per_epoch(workers):
    import torch

    from benchmark.data.loader import train_loader

    raw = read_amazon_iisan(ensure_synthetic(OPTIONS))
    split = split_leave_one_out(raw, 4)
    features = ItemFeatures({"text_ids": torch.arange(raw.n_items + 1).unsqueeze(1)})
    loader = train_loader(split, features, 7, False, np.random.default_rng(0), workers, torch.device("cpu"))
    epochs = [[batch.sequences for batch in loader] for _ in range(2)]
    for batches in epochs:
        assert sum(b.shape[0] for b in batches) == len(split.train_sequences) and all(b.shape[1] == 5 for b in batches)
        assert sorted(map(tuple, torch.cat(batches).tolist())) == sorted(
            map(tuple, torch.cat([left_pad([s], 5) for s in split.train_sequences]).tolist())
        )
    assert not torch.equal(epochs[0][0], epochs[1][0])  # a fresh shuffle each epoch
    # The features each step reads are gathered with the batch (in the workers when there are any).
    batch = next(iter(loader))
    assert torch.equal(batch.features["text_ids"].squeeze(1), batch.encoded_ids)


def write_microlens(directory, titles: str, pairs: str, covers=("a", "b", "c"), media=True):
    from PIL import Image

    (directory / "MicroLens-tiny_covers").mkdir(parents=True)
    (directory / "MicroLens-tiny_titles.csv").write_text(titles)
    (directory / "MicroLens-tiny_pairs.tsv").write_text(pairs)
    for key in covers:
        Image.new("RGB", (4, 4), (1, 2, 3)).save(directory / "MicroLens-tiny_covers" / f"{key}.jpg")
    if media:
        (directory / "video").mkdir()
        (directory / "audio").mkdir()
        for key in covers:
            np.save(directory / "video" / f"{key}.npy", np.full((2, 3, 4, 4), 7, dtype=np.uint8))
            np.save(directory / "audio" / f"{key}.npy", np.ones((8, 4), dtype=np.float16))
    return directory


def test_microlens_reader_carries_video_and_audio(tmp_path):
    from benchmark.data.dataset import load_array_media
    from benchmark.formats.microlens import read_microlens

    directory = write_microlens(
        tmp_path / "m", 'item_id,title\na,"Cat video, funny"\nb,Dog\nc,Bird\n', "u1\ta b c\nu2\tc b\n"
    )
    raw = read_microlens(directory)
    assert raw.titles == ["Cat video, funny", "Dog", "Bird"] and raw.sequences == [[1, 2, 3], [3, 2]]
    assert load_images(raw, 4).shape == (4, 3, 4, 4)
    video = load_array_media(raw, "video", torch.uint8)
    assert video.shape == (4, 2, 3, 4, 4) and video[1].eq(7).all() and video[0].eq(0).all()
    assert load_array_media(raw, "audio", torch.float16).shape == (4, 8, 4)


def test_microlens_bad_rows_and_missing_media(tmp_path):
    from benchmark.data.dataset import load_array_media
    from benchmark.formats.microlens import read_microlens

    directory = write_microlens(tmp_path / "bad", "item_id,title\na,x\na,y\nb\n", "u1\ta b\n")
    with pytest.raises(DatasetError) as caught:
        read_microlens(directory)
    assert "MicroLens-tiny_titles.csv:3: duplicate item id 'a'" in str(caught.value)
    assert "MicroLens-tiny_titles.csv:4: expected 2 fields" in str(caught.value)
    directory = write_microlens(tmp_path / "unknown", "item_id,title\na,x\nb,y\n", "u1\ta zz\n")
    with pytest.raises(DatasetError, match=r"_pairs.tsv:1: unknown item id 'zz'"):
        read_microlens(directory)
    directory = write_microlens(
        tmp_path / "nomedia", "item_id,title\na,x\nb,y\n", "u1\ta b\n", covers=("a",), media=False
    )
    raw = read_microlens(directory)
    with pytest.raises(DatasetError, match="1 of 2 items have no image"):
        load_images(raw, 4)
    with pytest.raises(DatasetError, match="2 of 2 items have no video"):
        load_array_media(raw, "video", torch.uint8)
