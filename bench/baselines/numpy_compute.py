#!/usr/bin/python3
"""The compute benchmark's baselines: numpy (OpenBLAS) doing the same work as the worker's kernels.

Prints one JSON object per line: {"name": ..., "seconds": best of the repeats, ...}.
Sizes come from the command line so the C# side and this script cannot drift apart:
  numpy_compute.py MATMUL_N KMEANS_N KMEANS_D KMEANS_K KMEANS_ITERS KNN_N KNN_Q KNN_D KNN_K
"""
import json
import sys
import time

import numpy as np


def best_of(repeats, fn):
    fn()  # warm up: thread pool start, page faults
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def kmeans(points, k, iterations):
    # The same Lloyd iterations as the kernel: squared distances through one matrix product, argmin, means.
    centroids = points[:k].copy()
    norms = (points * points).sum(axis=1)
    for _ in range(iterations):
        distances = norms[:, None] - 2 * points @ centroids.T + (centroids * centroids).sum(axis=1)[None, :]
        labels = distances.argmin(axis=1)
        counts = np.bincount(labels, minlength=k)
        # bincount per coordinate: much faster than np.add.at, so the baseline is numpy at its best.
        sums = np.stack([np.bincount(labels, weights=points[:, j], minlength=k) for j in range(points.shape[1])], axis=1)
        nonempty = counts > 0
        centroids[nonempty] = sums[nonempty] / counts[nonempty, None]
    return centroids, labels


def knn(corpus, queries, k):
    # Cosine: unit rows, one product, a partial sort per query, then the k in order.
    corpus = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = queries @ corpus.T
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1)
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)


def main():
    matmul_n, km_n, km_d, km_k, km_iters, knn_n, knn_q, knn_d, knn_k = map(int, sys.argv[1:10])
    rng = np.random.default_rng(1)
    # Which BLAS numpy really loaded (Debian switches it with alternatives): the matmul baseline depends on it.
    blas = "unknown"
    with open("/proc/self/maps") as maps:
        for line in maps:
            if "blas" in line:
                blas = line.split()[-1]
                break
    print(json.dumps({"name": "numpy", "version": np.__version__, "blas": blas}), flush=True)

    a = rng.random((matmul_n, matmul_n), dtype=np.float32)
    b = rng.random((matmul_n, matmul_n), dtype=np.float32)
    print(json.dumps({"name": "matmul", "seconds": best_of(5, lambda: a @ b)}), flush=True)

    points = rng.random((km_n, km_d), dtype=np.float32)
    print(json.dumps({"name": "kmeans", "seconds": best_of(3, lambda: kmeans(points, km_k, km_iters))}), flush=True)

    corpus = rng.random((knn_n, knn_d), dtype=np.float32) - 0.5
    queries = rng.random((knn_q, knn_d), dtype=np.float32) - 0.5
    print(json.dumps({"name": "knn", "seconds": best_of(3, lambda: knn(corpus, queries, knn_k))}), flush=True)


if __name__ == "__main__":
    main()
