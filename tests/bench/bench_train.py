#!/usr/bin/python3
"""Baselines for bench_train.sh, run with Debian's /usr/bin/python3.

  bench_train.py split ROWS VALIDATION_SPLIT SEED           -> (not used; see below)
  bench_train.py sklearn FILE.csv HIDDEN EPOCHS BATCH VAL_IDX
  bench_train.py torch   FILE.csv HIDDEN EPOCHS BATCH VAL_IDX
  bench_train.py loadtxt FILE.csv

VAL_IDX is a file of validation row indices (one per line) written by the C
bench, so every engine trains and validates on the same rows. One thread
each (the shell script sets OMP/OPENBLAS/MKL thread counts to 1 as well).
Prints key=value figures on one line.
"""
import sys
import time

import numpy as np


def load(path):
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)
    return data[:, :-1], data[:, -1].astype(np.int64)


def split(x, y, val_idx_path):
    val = np.loadtxt(val_idx_path, dtype=np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[val] = False
    return x[mask], y[mask], x[val], y[val]


def scale(xt, xv):
    mu = xt.mean(axis=0)
    sd = xt.std(axis=0)
    sd[sd == 0] = 1
    return (xt - mu) / sd, (xv - mu) / sd


def run_sklearn(path, hidden, epochs, batch, val_idx):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x, y = load(path)
    xt, yt, xv, yv = split(x, y, val_idx)
    xt, xv = scale(xt, xv)
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), activation="relu", solver="adam",
                        alpha=1e-4, batch_size=batch, learning_rate_init=1e-3, max_iter=epochs,
                        shuffle=True, random_state=1, tol=0.0, n_iter_no_change=10**9)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(xt, yt)
    dt = time.perf_counter() - t
    acc = float((clf.predict(xv) == yv).mean())
    print(f"engine=sklearn train_rows={len(yt)} epochs={clf.n_iter_} train_s={dt:.3f} "
          f"samples_per_s={len(yt) * clf.n_iter_ / dt:.0f} val_accuracy={acc:.4f}")


def run_torch(path, hidden, epochs, batch, val_idx):
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(1)
    x, y = load(path)
    xt, yt, xv, yv = split(x, y, val_idx)
    xt, xv = scale(xt, xv)
    xt_t = torch.from_numpy(np.ascontiguousarray(xt))
    yt_t = torch.from_numpy(yt.astype(np.float32))
    xv_t = torch.from_numpy(np.ascontiguousarray(xv))
    model = torch.nn.Sequential(torch.nn.Linear(xt.shape[1], hidden), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.0)
    lossf = torch.nn.BCEWithLogitsLoss()
    n = len(yt)
    t = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n)
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            opt.zero_grad()
            loss = lossf(model(xt_t[idx]).squeeze(1), yt_t[idx])
            loss.backward()
            opt.step()
    dt = time.perf_counter() - t
    with torch.no_grad():
        pred = (model(xv_t).squeeze(1) > 0).numpy().astype(np.int64)
    acc = float((pred == yv).mean())
    print(f"engine=torch train_rows={n} epochs={epochs} train_s={dt:.3f} "
          f"samples_per_s={n * epochs / dt:.0f} val_accuracy={acc:.4f}")


def run_loadtxt(path):
    import os

    t = time.perf_counter()
    a = np.loadtxt(path, delimiter=",", dtype=np.float32)
    dt = time.perf_counter() - t
    size = os.path.getsize(path)
    print(f"engine=numpy.loadtxt bytes={size} rows={a.shape[0]} parse_s={dt:.3f} "
          f"mb_per_s={size / 1e6 / dt:.1f}")


def main():
    mode = sys.argv[1]
    if mode in ("sklearn", "torch"):
        fn = run_sklearn if mode == "sklearn" else run_torch
        fn(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    elif mode == "loadtxt":
        run_loadtxt(sys.argv[2])
    else:
        sys.exit("unknown mode")


if __name__ == "__main__":
    main()
