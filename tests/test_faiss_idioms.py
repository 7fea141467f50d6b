"""The faiss idioms users type, on real faiss objects: metric constants, IDSelectors, search
parameters, preallocated results, nbits / metric_type / verbose, merge_from, and what happens
when faiss's own functions are handed a BioHash index."""
import copy

import faiss
import numpy as np
import pytest

from biohash_index import BioHashIndex, BioHashIndexRefine, index_factory


@pytest.fixture
def base(trained, clustered):
    """A trained, empty flat index (conftest's ``trained``) and the data it was trained on."""
    return trained, clustered[0]


def filled(base, ids=None):
    """A copy of the trained index holding the data (under ``ids`` if given)."""
    template, xb = base
    index = copy.deepcopy(template)
    if ids is None:
        index.add(xb)
    else:
        index.add_with_ids(xb, ids)
    return index


def stored_ids(index):
    return np.sort(index.storage.ids())


# ---------------------------------------------------------------- factory and metrics
@pytest.mark.parametrize("description,k", [
    ("IDMap,BioHash16", 16), ("IDMap2,BioHash8_m64", 8), ("LSH16", 16), ("LSH16rt", 16),
    ("LSHt", 32), ("LSH", 32), ("IDMap,LSH8r", 8),
])
def test_factory_takes_faiss_strings(description, k):
    index = index_factory(32, description)
    assert isinstance(index, BioHashIndex) and index.hash_length == k
    made = faiss.index_factory(32, description.replace("BioHash16", "LSH16")
                               .replace("BioHash8_m64", "LSH8"))   # kept: it owns the rest
    lsh = faiss.downcast_index(made)
    if not isinstance(lsh, faiss.IndexLSH):
        lsh = faiss.downcast_index(lsh.index)
    assert lsh.nbits == index.hash_length        # the same nbits convention as faiss


def test_factory_lsh_with_refine_and_ivf():
    index = index_factory(32, "LSH8,IVF4,RFlat", faiss.METRIC_INNER_PRODUCT)
    assert isinstance(index, BioHashIndexRefine) and index.metric == "ip"
    assert index.base_index.storage.kind == "ivf" and index.base_index.hash_length == 8


@pytest.mark.parametrize("metric,name", [
    (faiss.METRIC_L2, "l2"), (faiss.METRIC_INNER_PRODUCT, "ip"), ("l2", "l2"), ("IP", "ip")])
def test_metric_constants(metric, name):
    refine = index_factory(32, "BioHash4_m64,RFlat", metric)
    faiss_metric = {"l2": faiss.METRIC_L2, "ip": faiss.METRIC_INNER_PRODUCT}[name]
    assert refine.metric == name and refine.metric_type == faiss_metric
    direct = BioHashIndexRefine(BioHashIndex(32, 4, n_hidden=64), metric=metric)
    assert direct.metric == name
    assert direct.refine_index.metric_type == refine.metric_type


@pytest.mark.parametrize("metric", [faiss.METRIC_L1, "cosine", True, 1.0, None])
def test_bad_metric(metric):
    with pytest.raises(ValueError, match="faiss.METRIC_L2"):
        index_factory(32, "BioHash4,RFlat", metric)


# ---------------------------------------------------------------- remove_ids with selectors
@pytest.mark.parametrize("make_selector,n_removed", [
    (lambda: faiss.IDSelectorRange(10, 40), 10),
    (lambda: faiss.IDSelectorBatch(np.array([0, 3, 6, 7, 2**40])), 3),
    (lambda: faiss.IDSelectorArray(np.array([9, 12, 13])), 2),
    (lambda: faiss.IDSelectorNot(faiss.IDSelectorRange(0, 600)), 400),
], ids=["range", "batch", "array", "not"])
def test_remove_ids_with_selector(clustered, make_selector, n_removed):
    """The vectors faiss's IndexLSH would drop for the same selector and ids are dropped."""
    xb = clustered[0]
    ids = np.arange(len(xb), dtype=np.int64) * 3
    lsh = faiss.IndexIDMap(faiss.IndexLSH(32, 16))
    lsh.train(xb)
    lsh.add_with_ids(xb, ids)
    assert lsh.remove_ids(make_selector()) == n_removed
    keep = np.sort(faiss.vector_to_array(lsh.id_map))
    first_removed = np.setdiff1d(ids, keep)[:1]
    for storage in ("flat", "inverted", "ivf"):
        template = BioHashIndex(32, 4, n_hidden=64, epochs=2, storage=storage, nlist=4)
        template.train(xb)
        index = filled((template, xb), ids)
        assert index.remove_ids(make_selector()) == n_removed
        np.testing.assert_array_equal(stored_ids(index), keep)
        index.add_with_ids(xb[:1], first_removed)       # the id set follows the removal


def test_remove_ids_selector_on_refine(base):
    template, xb = base
    refine = BioHashIndexRefine(copy.deepcopy(template), faiss.METRIC_L2)
    refine.add(xb)
    assert refine.remove_ids(faiss.IDSelectorRange(0, 100)) == 100
    assert refine.ntotal == len(xb) - 100 == refine.refine_index.ntotal
    _, I = refine.search(xb[:10], 5)
    assert (I >= 100).all()


# ---------------------------------------------------------------- search parameters and outputs
def test_nprobe_per_call_equals_setting_it(clustered):
    xb = clustered[0]
    index = BioHashIndex(32, 4, n_hidden=64, epochs=2, storage="ivf", nlist=16, nprobe=1)
    index.train(xb)
    index.add(xb)
    D1, I1 = index.search(xb[:50], 10)
    for params in (faiss.SearchParametersIVF(nprobe=16), {"nprobe": 16}):
        D16, I16 = index.search(xb[:50], 10, params=params)
        assert index.nprobe == 1                         # the setting is untouched
        index.nprobe = 16
        D, I = index.search(xb[:50], 10)
        index.nprobe = 1
        np.testing.assert_array_equal(D16, D)
        np.testing.assert_array_equal(I16, I)
    assert (D16.sum() < D1.sum()) and not np.array_equal(I16, I1)   # more lists, nearer
    with pytest.raises(ValueError, match="nprobe"):
        index.search(xb[:5], 3, params={"nprobe": 0})


@pytest.mark.parametrize("storage", ["flat", "inverted", "ivf"])
@pytest.mark.parametrize("scoring", ["hamming", "asymmetric"])
def test_search_with_selector_params(base, storage, scoring):
    template, xb = base
    index = BioHashIndex.from_params(template.params.replace(scoring=scoring),
                                     storage=storage, nlist=4, nprobe=2)
    index.train(xb)
    index.add(xb)
    subset = copy.deepcopy(index)
    subset.remove_ids(faiss.IDSelectorNot(faiss.IDSelectorRange(100, 200)))
    for params in (faiss.SearchParameters(sel=faiss.IDSelectorRange(100, 200)),
                   {"sel": faiss.IDSelectorRange(100, 200)}):
        D, I = index.search(xb[:20], 5, params=params)
        assert ((I >= 100) & (I < 200)).all()
        Ds, Is = subset.search(xb[:20], 5)
        np.testing.assert_array_equal(D, Ds)             # the best among the selected
        np.testing.assert_array_equal(I, Is)
    if storage == "ivf":
        return
    with pytest.raises(ValueError, match="storage='ivf' only"):
        index.search(xb[:5], 3, params={"nprobe": 4})
    with pytest.raises(ValueError, match="storage='ivf' only"):
        index.search(xb[:5], 3, params=faiss.SearchParametersIVF(nprobe=4))
    with pytest.raises(ValueError, match="unknown fields"):
        index.search(xb[:5], 3, params={"nprob": 4})
    with pytest.raises(TypeError, match="params"):
        index.search(xb[:5], 3, params=4)


def test_preallocated_results(base):
    index = filled(base)
    xq = base[1][:7]
    D0, I0 = index.search(xq, 4)
    D, I = np.full((7, 4), -5, np.float32), np.full((7, 4), -5, np.int64)
    D1, I1 = index.search(xq, 4, D=D, I=I)
    assert D1 is D and I1 is I
    np.testing.assert_array_equal(D, D0)
    np.testing.assert_array_equal(I, I0)
    lsh = faiss.IndexLSH(32, 16)
    lsh.train(base[1])
    lsh.add(base[1])
    Dl, Il = lsh.search(xq, 4, D=D.copy(), I=I.copy())  # faiss takes the same arguments
    assert Dl.shape == D.shape and Il.dtype == I.dtype
    cases = [(dict(D=np.empty((7, 4), np.float64)), TypeError, "D must have dtype float32"),
             (dict(I=np.empty((7, 4), np.int32)), TypeError, "I must have dtype int64"),
             (dict(I=np.empty((7, 5), np.int64)), ValueError, r"\(7, 4\)"),
             (dict(D=[[0.0] * 4] * 7), TypeError, "numpy array")]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            index.search(xq, 4, **kwargs)
    refine = BioHashIndexRefine(copy.deepcopy(base[0]))
    refine.add(base[1])
    Dr, Ir = refine.search(xq, 4)
    D, I = np.empty((7, 4), np.float32), np.empty((7, 4), np.int64)
    assert refine.search(xq, 4, D=D, I=I)[1] is I
    np.testing.assert_array_equal(I, Ir)
    with pytest.raises(ValueError, match="shape"):
        refine.search(xq, 4, D=np.empty((4, 7), np.float32))


# ---------------------------------------------------------------- attributes
def test_nbits_metric_type_and_verbose(base, capsys):
    template, xb = base
    lsh = faiss.IndexLSH(32, 64)
    assert template.nbits == template.n_hidden == 64
    assert template.code_size == (template.nbits + 7) // 8 == lsh.code_size
    assert template.metric_type == lsh.metric_type == faiss.METRIC_L2
    index = copy.deepcopy(template)
    assert index.verbose is False and lsh.verbose is False
    index.add(xb[:10])
    assert capsys.readouterr().out == ""
    index.verbose = True
    index.add(xb[:10])
    out = capsys.readouterr().out
    assert "BioHashIndex.add: 10 vectors in" in out and "ntotal=20" in out
    with pytest.raises(TypeError, match="verbose"):
        index.verbose = "yes"


@pytest.mark.parametrize("router", ["learned", "kmeans"])
def test_verbose_ivf_prints_the_router_and_faiss_clustering(clustered, capfd, router):
    index = BioHashIndex(32, 4, n_hidden=64, epochs=2, storage="ivf", nlist=4, router=router)
    index.verbose = True
    index.train(clustered[0])
    out = capfd.readouterr().out
    assert "BioHashIndex.train: 600 vectors" in out
    assert f"Router ({router}): 4 units from 256 vectors; nprobe_=" in out   # 64 per unit
    assert ("Clustering 256 points" in out) == (router == "kmeans")   # faiss's own report


# ---------------------------------------------------------------- merge_from
@pytest.mark.parametrize("storage", ["flat", "ivf"])
def test_merge_from_equals_one_index(clustered, storage):
    xb = clustered[0]
    template = BioHashIndex(32, 4, n_hidden=64, epochs=2, storage=storage, nlist=4, nprobe=4)
    template.train(xb)
    a, b, whole = (copy.deepcopy(template) for _ in range(3))
    a.add_with_ids(xb[:300], np.arange(300))
    b.add_with_ids(xb[300:], np.arange(300, len(xb)) - 300)
    whole.add(xb)
    a.merge_from(b, add_id=300)
    assert a.ntotal == len(xb) and b.ntotal == 0 and b.is_trained
    np.testing.assert_array_equal(stored_ids(a), np.arange(len(xb)))
    Da, Ia = a.search(xb[::7], 10)
    Dw, Iw = whole.search(xb[::7], 10)
    np.testing.assert_array_equal(Da, Dw)
    np.testing.assert_array_equal(np.sort(Ia), np.sort(Iw)) if storage == "flat" else None
    assert len(a.search(xb[:1], 1)) == 2
    b.add(xb[:3])                                      # other is usable afterwards
    assert b.ntotal == 3


def test_merge_from_refuses_and_changes_nothing(base, clustered):
    template, xb = base
    a, b = copy.deepcopy(template), copy.deepcopy(template)
    a.add(xb[:100])
    b.add(xb[50:150])                                  # ids 0..99 again: they collide
    before = (stored_ids(a), stored_ids(b))
    with pytest.raises(ValueError, match="already in the index"):
        a.merge_from(b)
    np.testing.assert_array_equal(stored_ids(a), before[0])
    np.testing.assert_array_equal(stored_ids(b), before[1])
    a.merge_from(b, add_id=1000)                       # shifted: no collision
    assert a.ntotal == 200
    other = BioHashIndex(32, 4, n_hidden=64, epochs=3, seed=1)
    other.train(xb)
    other.add(xb[:5])
    with pytest.raises(ValueError, match="same model"):
        a.merge_from(other, add_id=5000)
    assert other.ntotal == 5 and a.ntotal == 200
    with pytest.raises(ValueError, match="itself"):
        a.merge_from(a)
    with pytest.raises(TypeError, match="BioHashIndex"):
        a.merge_from(faiss.IndexLSH(32, 16))
    with pytest.raises(ValueError, match="add_id"):
        a.merge_from(b, add_id=-1)


# ---------------------------------------------------------------- faiss's own functions
@pytest.mark.parametrize("call", [
    lambda index, tmp: faiss.write_index(index, str(tmp / "x.faiss")),
    lambda index, tmp: faiss.IndexIDMap(index),
    lambda index, tmp: faiss.IndexIDMap2(index),
    lambda index, tmp: faiss.clone_index(index),
], ids=["write_index", "IndexIDMap", "IndexIDMap2", "clone_index"])
def test_faiss_functions_say_what_to_use_instead(base, tmp_path, call):
    for index in (base[0], BioHashIndexRefine(copy.deepcopy(base[0]))):
        with pytest.warns(UserWarning, match=r"not a faiss C\+\+ index.*"
                                             r"biohash_index.write_index\(index, path\).*"
                                             r"'index.faiss'.*IDMap2,BioHash64"):
            with pytest.raises(TypeError):
                call(index, tmp_path)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- documented differences
def test_ids_after_remove_differ_from_index_lsh_as_documented(base):
    """IndexLSH renumbers the vectors after a removed one and add() continues at ntotal;
    BioHash keeps every id and add() continues after the largest id ever added."""
    template, xb = base
    lsh = faiss.IndexLSH(32, 16)
    lsh.train(xb)
    lsh.add(xb[:10])
    index = copy.deepcopy(template)
    index.add(xb[:10])
    assert lsh.remove_ids(np.array([2, 9])) == index.remove_ids(np.array([2, 9])) == 2
    assert lsh.search(xb[3:4], 1)[1][0, 0] == 2         # vector 3 is now id 2 in IndexLSH
    assert index.search(xb[3:4], 1)[1][0, 0] == 3       # and still id 3 here
    lsh.add(xb[10:11])
    index.add(xb[10:11])
    assert lsh.search(xb[10:11], 1)[1][0, 0] == 8       # ntotal before the add
    assert index.search(xb[10:11], 1)[1][0, 0] == 10    # largest id ever added (9) + 1
