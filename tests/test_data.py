"""Data loading (ugach_core.data): the real Wikipedia files, npz, synthetic, and bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from ugach_core.data import (CrossModalDataset, data_root, default_split, load, load_npz,
                             load_wikipedia, make_synthetic)

# ------------------------------------------------------------------ real Wikipedia files


def test_wikipedia_official_protocol(wiki):
    """2,866 pairs, 128-d/10-d, 10 one-hot classes, 2,173 train = database, 693 test queries."""
    assert wiki.name == "wikipedia" and not wiki.synthetic
    assert wiki.n == 2866 and wiki.dims == (128, 10)
    assert wiki.img.dtype == np.float32 and wiki.txt.dtype == np.float32
    assert wiki.labels.shape == (2866, 10)
    np.testing.assert_array_equal(wiki.labels.sum(1), np.ones(2866))
    np.testing.assert_array_equal(wiki.train_idx, np.arange(2173))
    np.testing.assert_array_equal(wiki.query_idx, np.arange(2173, 2866))
    np.testing.assert_array_equal(wiki.db_idx, wiki.train_idx)
    assert wiki.label_names[0] == "art" and wiki.label_names[-1] == "warfare"


def test_wikipedia_class_counts(wiki):
    """Per-class counts from the release README: train 138 272 ... 347, test 34 88 ... 104."""
    np.testing.assert_array_equal(wiki.labels[wiki.train_idx].sum(0),
                                  [138, 272, 244, 248, 202, 178, 186, 144, 214, 347])
    np.testing.assert_array_equal(wiki.labels[wiki.query_idx].sum(0),
                                  [34, 88, 96, 85, 65, 58, 51, 41, 71, 104])


def test_wikipedia_features_are_the_mat_file(wiki, wiki_root):
    """Row order: I_tr then I_te; the SIFT histograms sum to 1, as the README says."""
    import scipy.io
    mat = scipy.io.loadmat(wiki_root / "raw_features.mat")
    np.testing.assert_allclose(wiki.img[:3], mat["I_tr"][:3], rtol=1e-6)
    np.testing.assert_allclose(wiki.txt[-2:], mat["T_te"][-2:], rtol=1e-6)
    np.testing.assert_allclose(wiki.img.sum(1), 1.0, atol=1e-4)


def test_load_finds_folder_itself_and_case_insensitive_name(wiki_root):
    """root may be the wikipedia folder itself; the name is case-insensitive."""
    d = load("Wikipedia", root=wiki_root)
    assert d.n == 2866


def test_load_auto_prefers_real_data(data_root_path):
    """'auto' returns Wikipedia when its files are under the root."""
    d = load("auto", root=data_root_path)
    assert d.name == "wikipedia" and not d.synthetic


# ------------------------------------------------------------------ bad Wikipedia files


@pytest.mark.parametrize("missing", ["raw_features.mat", "testset_txt_img_cat.list"])
def test_wikipedia_missing_file(wiki_copy, missing):
    """A missing release file is a FileNotFoundError that names it."""
    (wiki_copy / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing.replace(".", r"\.")):
        load_wikipedia(wiki_copy)


def test_load_wikipedia_from_empty_root(tmp_path):
    """load('wikipedia') under an empty root says where it looked and what files it needs."""
    with pytest.raises(FileNotFoundError, match="Wikipedia data not found.*raw_features.mat"):
        load("wikipedia", root=tmp_path)


def test_wikipedia_corrupt_mat(wiki_copy):
    """Garbage bytes in raw_features.mat: ValueError saying the file is corrupt."""
    (wiki_copy / "raw_features.mat").write_bytes(b"\x00garbage\xff" * 500)
    with pytest.raises(ValueError, match="raw_features.mat.*corrupt"):
        load_wikipedia(wiki_copy)


def test_wikipedia_list_with_dropped_line(wiki_copy):
    """Dropping one line of the training list: 'training rows do not line up: 2173 vs 2172'."""
    p = wiki_copy / "trainset_txt_img_cat.list"
    lines = p.read_text(encoding="utf-8").splitlines(keepends=True)
    p.write_text("".join(lines[:10] + lines[11:]), encoding="utf-8")
    with pytest.raises(ValueError, match="training rows do not line up: 2173 vs 2172"):
        load_wikipedia(wiki_copy)


def test_wikipedia_malformed_list_line(wiki_copy):
    """A list line without 3 tab-separated fields names the file and line number."""
    p = wiki_copy / "testset_txt_img_cat.list"
    lines = p.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[4] = "broken line\n"
    p.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(ValueError, match=r"testset_txt_img_cat\.list:5: expected"):
        load_wikipedia(wiki_copy)


def test_wikipedia_list_that_is_not_text(wiki_copy):
    """Random bytes in a list file: the file is named and deleting it is the fix (a
    --download alone keeps a file that is there)."""
    (wiki_copy / "trainset_txt_img_cat.list").write_bytes(bytes(range(128, 256)) * 8)
    with pytest.raises(ValueError, match=r"trainset_txt_img_cat\.list is not a UTF-8 text "
                                         r"file.*delete the damaged file.*--download"):
        load_wikipedia(wiki_copy)


def test_wikipedia_features_of_two_widths(wiki_copy):
    """I_te narrower than I_tr once ended in numpy's concatenate error."""
    mat = scipy.io.loadmat(wiki_copy / "raw_features.mat")
    mat = {k: v for k, v in mat.items() if not k.startswith("__")}
    mat["I_te"] = mat["I_te"][:, :100]
    scipy.io.savemat(wiki_copy / "raw_features.mat", mat)
    with pytest.raises(ValueError, match=r"I_tr is 128-d but I_te is 100-d"):
        load_wikipedia(wiki_copy)


def test_wikipedia_category_names_must_be_ten(wiki_copy):
    (wiki_copy / "categories.list").write_text("art\nbiology\nhistory\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"categories\.list must hold the 10 category names.*"
                                         r"holds 3"):
        load_wikipedia(wiki_copy)
    (wiki_copy / "categories.list").unlink()  # optional: generic names
    assert load_wikipedia(wiki_copy).label_names[0] == "class1"


def test_load_wikipedia_names_the_one_missing_file(wiki_copy):
    """One release file missing under the data root: load() names it, not 'not found'."""
    (wiki_copy / "testset_txt_img_cat.list").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing in .*: testset_txt_img_cat\.list"):
        load("wikipedia", root=wiki_copy)


# ------------------------------------------------------------------ synthetic and "auto"


def test_load_auto_falls_back_to_synthetic(tmp_path, capsys):
    """'auto' with no real data: the synthetic set, named synthetic, with a notice on stderr."""
    d = load("auto", root=tmp_path)
    assert d.synthetic is True and "synthetic" in d.name
    assert "SYNTHETIC" in capsys.readouterr().err
    assert "[SYNTHETIC DATA]" in d.summary()


def test_summary_fits_the_page_and_says_everything_once():
    """``summary()`` (printed near the top of every chapter and by the command line) comes
    in lines of at most 88 characters, the chapters' page, and holds the same text as the
    one-line form ``summary(0)`` of the repr."""
    d = make_synthetic(n=120, d_img=16, d_txt=8, seed=7)
    d.protocol = ("a protocol long enough to need a second line: "
                  + ", ".join(["queries vs database"] * 4))
    text, line = d.summary(), d.summary(0)
    assert "\n" in text and max(len(ln) for ln in text.splitlines()) <= 88
    assert " ".join(ln.strip() for ln in text.splitlines()) == line
    assert "\n" not in line and repr(d) == f"CrossModalDataset({line})"


def test_make_synthetic_deterministic_and_seeded():
    """Same seed -> identical arrays; another seed -> different data."""
    a = make_synthetic(n=120, d_img=16, d_txt=8, seed=7)
    b = make_synthetic(n=120, d_img=16, d_txt=8, seed=7)
    c = make_synthetic(n=120, d_img=16, d_txt=8, seed=8)
    for f in ("img", "txt", "labels", "train_idx", "query_idx", "db_idx"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.img, c.img) and not np.array_equal(a.labels, c.labels)
    assert a.img.shape == (120, 16) and a.txt.shape == (120, 8)
    assert (a.txt >= 0).all() and a.labels.sum(1).min() >= 1 and a.labels.sum(1).max() <= 3
    assert len(a.query_idx) == 20  # n // 6
    assert a.synthetic and a.name == "synthetic"


def test_synthetic_flag_forces_name():
    """A dataset flagged synthetic always carries 'synthetic' in its name."""
    d = CrossModalDataset("toy", np.ones((3, 2)), np.ones((3, 2)), np.eye(3), [0, 1], [2], [0, 1],
                          synthetic=True)
    assert d.name == "toy (synthetic)"


# ------------------------------------------------------------------ npz


def _arrays(n=30, seed=0):
    r = np.random.default_rng(seed)
    return dict(img=r.normal(size=(n, 4)).astype(np.float32),
                txt=r.random((n, 3)).astype(np.float32),
                labels=np.eye(3, dtype=np.uint8)[r.integers(0, 3, n)])


def test_npz_round_trip_with_split(tmp_path):
    """Arrays, split indices, val_idx and label_names come back exactly."""
    a = _arrays()
    split = dict(train_idx=np.arange(20), query_idx=np.arange(20, 30), db_idx=np.arange(5, 20),
                 val_idx=np.array([0, 1]), label_names=np.array(["a", "b", "c"]))
    np.savez(tmp_path / "toy.npz", **a, **split)
    d = load(tmp_path / "toy.npz")
    assert d.name == "toy" and d.protocol == "split from the file"
    for k in ("img", "txt", "labels", "train_idx", "query_idx", "db_idx", "val_idx"):
        np.testing.assert_array_equal(getattr(d, k), (a | split)[k])
    assert d.label_names == ["a", "b", "c"]
    fit, val = d.split_validation(0.5)
    np.testing.assert_array_equal(val, [0, 1])
    np.testing.assert_array_equal(fit, np.arange(2, 20))


def test_npz_default_split(tmp_path):
    """No split arrays: n//10 sorted queries, database = training set = the rest, seeded."""
    np.savez(tmp_path / "toy.npz", **_arrays(n=30))
    d = load_npz(tmp_path / "toy.npz")
    assert len(d.query_idx) == 3 and len(d.db_idx) == 27
    np.testing.assert_array_equal(d.train_idx, d.db_idx)
    np.testing.assert_array_equal(np.sort(np.concatenate([d.query_idx, d.db_idx])), np.arange(30))
    assert np.all(np.diff(d.query_idx) > 0)
    np.testing.assert_array_equal(load_npz(tmp_path / "toy.npz").query_idx, d.query_idx)
    seeds = {tuple(load_npz(tmp_path / "toy.npz", seed=s).query_idx) for s in range(5)}
    assert len(seeds) > 1
    assert "default split (seed 0)" in d.protocol


def test_default_split_rules():
    """10% queries capped at 2,000; explicit n_query; n < 3 rejected."""
    tr, q, db = default_split(25000, seed=1)
    assert len(q) == 2000 and len(db) == 23000 and np.array_equal(tr, db)
    assert len(default_split(10, n_query=4)[1]) == 4
    with pytest.raises(ValueError, match="at least 3"):
        default_split(2)


def test_npz_missing_labels(tmp_path):
    """An npz without labels names what is missing and what it has."""
    a = _arrays()
    np.savez(tmp_path / "nolab.npz", img=a["img"], txt=a["txt"])
    with pytest.raises(ValueError, match=r"lacks arrays \['labels'\].*has \['img', 'txt'\]"):
        load_npz(tmp_path / "nolab.npz")


def test_npz_partial_split(tmp_path):
    """Giving only some of train/query/db indices is an error."""
    np.savez(tmp_path / "p.npz", **_arrays(), train_idx=np.arange(5))
    with pytest.raises(ValueError, match="give all of train_idx, query_idx, db_idx"):
        load_npz(tmp_path / "p.npz")


@pytest.mark.parametrize("payload", [b"this is not a zip archive" * 4, "truncated"])
def test_npz_corrupt_or_not_npz(tmp_path, payload):
    """Garbage or a truncated archive: ValueError 'corrupt or not an npz archive'."""
    p = tmp_path / "bad.npz"
    if payload == "truncated":
        np.savez(p, **_arrays())
        p.write_bytes(p.read_bytes()[:300])
    else:
        p.write_bytes(payload)
    with pytest.raises(ValueError, match="corrupt or not an npz archive"):
        load_npz(p)


def test_npz_that_is_a_plain_npy_array(tmp_path):
    """A plain .npy array (not an npz archive) is a clear ValueError."""
    p = tmp_path / "array.npz"
    with open(p, "wb") as fh:
        np.save(fh, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="npz"):
        load_npz(p)


def test_npz_missing_file(tmp_path):
    """A missing npz path is a FileNotFoundError naming it."""
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        load(tmp_path / "nothere.npz")


def test_npz_with_nan_features(tmp_path):
    """NaN in an npz's image features: ValueError giving the count and the rows."""
    a = _arrays()
    a["img"][[4, 9], 1] = np.nan
    np.savez(tmp_path / "nan.npz", **a)
    with pytest.raises(ValueError, match=r"image features contain 2 NaN/inf values in 2 rows "
                                         r"\(first rows: \[4, 9\]\)"):
        load_npz(tmp_path / "nan.npz")


# ------------------------------------------------------------------ CrossModalDataset checks


def _ds(**kw):
    a = _arrays(n=6)
    args = dict(name="toy", img=a["img"], txt=a["txt"], labels=a["labels"],
                train_idx=[0, 1, 2, 3], query_idx=[4, 5], db_idx=[0, 1, 2, 3])
    args.update(kw)
    return CrossModalDataset(**args)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_dataset_rejects_nonfinite_features(bad):
    """NaN or inf anywhere in the text features is rejected with the row."""
    txt = _arrays(n=6)["txt"]
    txt[3, 2] = bad
    with pytest.raises(ValueError, match=r"toy: text features contain 1 NaN/inf.*\[3\]"):
        _ds(txt=txt)


def test_dataset_rejects_1d_labels():
    """Class ids instead of multi-hot labels: the error says how to convert."""
    with pytest.raises(ValueError, match=r"multi-hot.*np\.eye"):
        _ds(labels=np.array([0, 1, 2, 0, 1, 2]))


def test_dataset_rejects_labels_of_more_dimensions():
    """(n, c, 1) labels once scored a perfect MAP through broadcasting: refused by shape."""
    with pytest.raises(ValueError, match=r"multi-hot \(n, classes\); got shape \(6, 3, 1\)"):
        _ds(labels=_arrays(n=6)["labels"][:, :, None])


@pytest.mark.parametrize("field, idx, what", [
    ("train_idx", np.ones(6, bool), "np.flatnonzero"),      # a mask, not indices
    ("query_idx", np.array([0.0, 1.5]), "dtype float64"),   # floats were truncated
    ("db_idx", np.array([[0, 1], [2, 3]]), r"shape \(2, 2\)")])  # 2-D was flattened
def test_dataset_index_arrays_must_be_1d_integers(field, idx, what):
    with pytest.raises(ValueError, match=rf"{field} must be a 1-D array of integer.*{what}"):
        _ds(**{field: idx})


def test_npz_with_a_scalar_feature_array_says_so(tmp_path):
    arrays = _arrays(n=6)
    arrays["img"] = np.float32(1.0)
    np.savez(tmp_path / "scalar.npz", **arrays)
    with pytest.raises(ValueError, match=r"img is a single number"):
        load_npz(tmp_path / "scalar.npz")


def test_dataset_rejects_non_binary_labels():
    """Label values other than 0/1 are rejected."""
    lab = _arrays(n=6)["labels"].astype(int)
    lab[0, 0] = 2
    with pytest.raises(ValueError, match="0/1 multi-hot"):
        _ds(labels=lab)


@pytest.mark.parametrize("field, idx", [("query_idx", [4, 6]), ("db_idx", [-1, 2]),
                                        ("val_idx", [10])])
def test_dataset_index_out_of_range(field, idx):
    """Indices outside [0, n) name the field."""
    with pytest.raises(ValueError, match=rf"{field} has indices outside \[0, 6\)"):
        _ds(**{field: idx})


def test_dataset_row_count_mismatch_and_empty_split():
    """Image/text/label rows must line up; query_idx may not be empty."""
    with pytest.raises(ValueError, match="6 image rows, 5 text rows, 6 label rows"):
        _ds(txt=_arrays(n=5)["txt"])
    with pytest.raises(ValueError, match="query_idx is empty"):
        _ds(query_idx=[])


def test_unknown_dataset_name(tmp_path):
    """An unknown name lists the registered ones."""
    with pytest.raises(ValueError, match=r"unknown data set 'imagenet'.*synthetic.*wikipedia"):
        load("imagenet", root=tmp_path)


# ------------------------------------------------------------------ validation split


def test_split_validation_disjoint_covering_deterministic():
    """10% of train_idx held out (round(0.1*40) = 4), disjoint, union = train_idx, seeded."""
    d = _ds(img=np.zeros((50, 2)), txt=np.zeros((50, 2)), labels=np.eye(2)[np.arange(50) % 2],
            train_idx=np.arange(5, 45), query_idx=[0, 1], db_idx=np.arange(5, 45))
    fit, val = d.split_validation(0.1, seed=3)
    assert len(val) == 4 and len(fit) == 36
    assert np.intersect1d(fit, val).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([fit, val])), np.arange(5, 45))
    fit2, val2 = d.split_validation(0.1, seed=3)
    np.testing.assert_array_equal(val, val2)
    np.testing.assert_array_equal(fit, fit2)
    assert any(not np.array_equal(val, d.split_validation(0.1, seed=s)[1]) for s in range(4, 8))
    f0, v0 = d.split_validation(0.0)
    np.testing.assert_array_equal(f0, d.train_idx)
    assert v0.size == 0
    with pytest.raises(ValueError, match="leaves no training pairs"):
        d.split_validation(1.0)


# ------------------------------------------------------------------ data root


def test_data_root_precedence(monkeypatch, tmp_path):
    """argument > $UGACH_DATA > $XDG_CACHE_HOME/ugach > ~/.cache/ugach."""
    monkeypatch.setenv("UGACH_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("UGACH_DATA")
    assert data_root() == tmp_path / "xdg" / "ugach"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".cache" / "ugach"
    monkeypatch.setenv("UGACH_DATA", "")  # empty means unset
    assert data_root() == tmp_path / "home" / ".cache" / "ugach"


def test_load_uses_ugach_data_env(monkeypatch, data_root_path):
    """load('wikipedia') with no root finds the files through $UGACH_DATA."""
    monkeypatch.setenv("UGACH_DATA", str(data_root_path))
    assert load("wikipedia").n == 2866
    monkeypatch.setenv("UGACH_DATA", str(Path("/nonexistent-ugach-root")))
    with pytest.raises(FileNotFoundError, match="nonexistent-ugach-root"):
        load("wikipedia")


@pytest.mark.parametrize("field, idx", [("query_idx", [4, 4]), ("db_idx", [0, 1, 1, 2]),
                                        ("train_idx", [0, 0, 1, 2])])
def test_dataset_rejects_repeated_rows(field, idx):
    """A query listed twice counted twice in MAP (it changed the score): refused."""
    with pytest.raises(ValueError, match=rf"{field} lists 1 rows more than once"):
        _ds(**{field: idx})


@pytest.mark.parametrize("val, match", [
    ([4], r"val_idx must be a subset of train_idx"),          # a test query
    ([0, 1, 2], r"leaves fewer than 2 of the 4 training pairs"),
])
def test_dataset_validation_pairs_are_held_out_training_pairs(val, match):
    with pytest.raises(ValueError, match=match):
        _ds(val_idx=val)


def test_dataset_validation_never_sees_the_test_queries():
    """Queries that are also training pairs (a transductive protocol) still may not be
    validation pairs: model selection on them is selection on test."""
    with pytest.raises(ValueError, match=r"val_idx shares 1 rows with query_idx"):
        _ds(train_idx=[0, 1, 2, 3, 4], val_idx=[4])
    assert _ds(train_idx=[0, 1, 2, 3, 4], val_idx=[3]).split_validation()[1].tolist() == [3]


def test_dataset_rejects_unlabelled_query_and_database_items():
    """All-zero label rows once scored MAP 0 without a word; training items may lack one."""
    lab = _arrays(n=6)["labels"].copy()
    lab[[1, 5]] = 0
    with pytest.raises(ValueError, match=r"1 query and 1 database items have no label"):
        _ds(labels=lab)
    assert _ds(labels=lab, db_idx=[0, 2, 3], query_idx=[4]).n == 6


def test_dataset_label_names_match_the_columns():
    with pytest.raises(ValueError, match=r"2 label names for 3 label columns"):
        _ds(label_names=["a", "b"])
    assert _ds(label_names=["a", "b", "c"]).label_names == ["a", "b", "c"]
