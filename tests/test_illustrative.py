"""The illustrative example: the circulant score on hand-made matrices, the task's data, the
architecture's equivariance, and the smoke run's contrast between the two first layers."""

import numpy as np
import pytest
import torch

from benchmarks import illustrative as il

SMOKE = il.PRESETS["smoke"]


@pytest.fixture(autouse=True)
def one_thread():
    """The benchmark's own setting: tiny tensors on 2 shared cores are slower with more threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def circulant(first_column: torch.Tensor) -> torch.Tensor:
    """The circulant matrix C[i, j] = c[(i - j) mod n]."""
    n = len(first_column)
    idx = torch.arange(n)
    return first_column[(idx[:, None] - idx[None, :]) % n]


@pytest.mark.parametrize("n", [1, 2, 5, 24])
def test_circulant_matrices_score_one_and_are_their_own_projection(n):
    c = circulant(torch.randn(n, generator=torch.Generator().manual_seed(n), dtype=torch.float64))
    assert il.circulant_score(c) == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(il.circulant_projection(c), c)
    shift = torch.roll(torch.eye(n, dtype=torch.float64), 3, dims=0)  # the task's own map
    assert il.circulant_score(shift) == pytest.approx(1.0)


def test_circulant_score_of_hand_made_matrices():
    # every wrapped diagonal of [[1, 2], [3, 4]] averages 2.5: 4 * 2.5^2 / (1 + 4 + 9 + 16)
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    torch.testing.assert_close(il.circulant_projection(w), torch.full((2, 2), 2.5))
    assert il.circulant_score(w) == pytest.approx(25 / 30)
    # one nonzero entry spreads over its diagonal: exactly 1/n
    for n in (3, 7):
        single = torch.zeros(n, n)
        single[1, 2] = -5.0
        assert il.circulant_score(single) == pytest.approx(1 / n)
    # a transposition puts one 1 on each of the three diagonals: all-1/3 projection, score 3 * (1/3) / 3
    swap = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert il.circulant_score(swap) == pytest.approx(1 / 3)


def test_random_matrices_score_about_one_over_n():
    # i.i.d. zero-mean entries: n of the n^2 dimensions are circulant, so the expected score is 1/n
    n = 32
    gen = torch.Generator().manual_seed(0)
    scores = [il.circulant_score(torch.randn(n, n, generator=gen)) for _ in range(50)]
    assert np.mean(scores) == pytest.approx(1 / n, rel=0.15)
    assert max(scores) < 3 / n


def test_circulant_score_refuses_what_it_cannot_score():
    with pytest.raises(ValueError, match="square matrix"):
        il.circulant_score(torch.ones(3, 4))
    with pytest.raises(ValueError, match="all-zero"):
        il.circulant_score(torch.zeros(3, 3))


def test_labels_are_the_input_shifted_and_training_leaves_the_rare_token_out_of_the_right_half():
    tokens = torch.tensor([[0, 1, 2, 3, 1]])
    assert il.shifted_labels(tokens, 2).tolist() == [[3, 1, 0, 1, 2]]  # labels[i] = tokens[i - 2 mod 5]

    rng = np.random.default_rng(0)
    train = il.sample_tokens(rng, 2000, SMOKE, restricted=True)
    right, left = train[:, SMOKE.length // 2 :], train[:, : SMOKE.length // 2]
    assert not (right == il.RARE_TOKEN).any()
    assert set(right.unique().tolist()) == set(range(SMOKE.vocab)) - {il.RARE_TOKEN}
    assert set(left.unique().tolist()) == set(range(SMOKE.vocab))  # every token, and every position, is seen
    uniform = il.sample_tokens(rng, 2000, SMOKE, restricted=False)
    assert (uniform[:, SMOKE.length // 2 :] == il.RARE_TOKEN).any()

    # unseen labels: the rare token read from the right half, marked where its label lands
    p = il.Preset(**{**il.asdict(SMOKE), "length": 6, "shift": 1})
    tokens = torch.tensor([[0, 1, 2, 0, 1, 0]])  # the rare token at 0, 3 and 5; the right half is 3..5
    assert il.unseen_labels(tokens, p).tolist() == [[True, False, False, False, True, False]]


def test_conv_layers_make_the_model_shift_equivariant_exactly_when_the_first_layer_is_circulant():
    torch.manual_seed(0)
    x = il.one_hot(torch.randint(0, SMOKE.vocab, (8, SMOKE.length)), SMOKE.vocab)
    conv, dense = il.build_model("fc+conv", SMOKE), il.build_model("fc+fc", SMOKE)

    def equivariance_errors(model):
        with torch.no_grad():
            y = model(x)
            return [float((model(torch.roll(x, k, 2)) - torch.roll(y, k, 2)).abs().max()) for k in range(SMOKE.length)]

    with torch.no_grad():
        for model in (conv, dense):
            model[0].weight.copy_(circulant(torch.randn(SMOKE.length)))
    assert max(equivariance_errors(conv)) < 1e-5  # every shift, not just one
    assert min(equivariance_errors(dense)[1:]) > 1e-2  # dense layers after it are not equivariant
    with torch.no_grad():
        conv[0].weight.copy_(torch.randn(SMOKE.length, SMOKE.length))
    assert min(equivariance_errors(conv)[1:]) > 1e-2


def test_training_is_seeded_and_deterministic():
    tokens = il.sample_tokens(np.random.default_rng(0), 300, SMOKE, restricted=True)
    small = il.Preset(**{**il.asdict(SMOKE), "epochs": 2})
    a, _ = il.train_model("fc+conv", small, 3, tokens)
    b, _ = il.train_model("fc+conv", small, 3, tokens)
    c, _ = il.train_model("fc+conv", small, 4, tokens)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(a[0].weight, c[0].weight)
    # one seed starts the three models from the same first layer: the comparison is of what training does
    starts = []
    for kind in il.MODELS:
        torch.manual_seed(5)
        starts.append(il.build_model(kind, SMOKE)[0].weight)
    assert all(torch.equal(starts[0], w) for w in starts)


def test_smoke_run_the_conv_model_learns_a_circulant_first_layer_and_the_dense_one_does_not():
    rows = il.run("smoke", [0])[0]["rows"]
    assert set(rows) == set(il.MODELS)
    conv, dense = rows["fc+conv"], rows["fc+fc"]
    # both fit the training distribution ...
    assert conv["held_out"] > 0.97 and dense["held_out"] > 0.97
    # ... but only the conv model's first layer is near circulant (random: about 1/16), and only it
    # labels the rare token where training never showed it
    assert conv["circulant"] > 0.8 and dense["circulant"] < 0.2
    assert conv["unseen"] > 0.9 and dense["unseen"] < 0.1
    assert conv["unseen_labels"] > 100


def test_smoke_run_writes_its_table_and_picture_away_from_the_docs(tmp_path, monkeypatch, capsys):
    tracked = il.TRACKED_PICTURE
    before = (tracked.read_bytes(), tracked.stat().st_mtime_ns) if tracked.exists() else None
    monkeypatch.chdir(tmp_path)
    assert il.main(["--preset", "smoke", "--seeds", "0"]) == 0
    table = tmp_path / "runs/illustrative/smoke/illustrative.md"
    picture = table.with_suffix(".png")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = table.read_text()
    assert text in capsys.readouterr().out
    for kind in il.MODELS:
        assert f"| 0 | {kind} |" in text
    assert "--preset smoke --seeds 0" in text  # the command that made the table
    after = (tracked.read_bytes(), tracked.stat().st_mtime_ns) if tracked.exists() else None
    assert after == before


def test_bad_input_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit) as exc:
        il.main(["--preset", "big"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'big'" in err and "smoke" in err and "cpu" in err
    with pytest.raises(ValueError, match="unknown preset 'big'; choose from smoke, cpu"):
        il.run("big", [0])
    with pytest.raises(SystemExit):
        il.main(["--preset", "smoke", "--seeds", "-1"])
    assert "--seeds must be non-negative" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown model 'rnn'"):
        il.build_model("rnn", SMOKE)
