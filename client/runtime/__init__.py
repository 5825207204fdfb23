"""On-device runtime: embed each window, personalize, decide, watch for drift (docs/architecture.md, "The device loop").

The pieces are small and independent, so a device loop composes them itself::

    from client.runtime.encoders import load_embedder
    from client.runtime.head import PersonalHead
    from client.runtime.projection import PCAProjection
    from client.runtime.bandit import LinUCB
    from client.runtime.drift import DriftDetector

    embedder = load_embedder("encoder.onnx")          # or encoder.pt / encoder.ts
    z0 = embedder.embed(first_windows)                # (B, D) float32
    head = PersonalHead().fit(embedder.embed(labeled_x), labeled_y)
    proj = PCAProjection.fit(z0, dim=32)
    policy = LinUCB(n_actions=6, dim=proj.dim)
    drift = DriftDetector.fit(z0)
    for window in stream:                             # one decision per window
        z = embedder.embed(window)[0]
        c = proj.transform(z)
        action = policy.choose(c)
        policy.update(c, action, observe(action))
        if drift.update(z):                           # the stream left the reference:
            ...                                       # adapt, then DriftDetector.fit(recent z)

Modules: ``encoders`` (Embedder, load_embedder), ``manifest`` (the export sidecar),
``head`` (PersonalHead), ``projection`` (PCAProjection, RandomProjection), ``bandit``
(LinUCB, LinearThompson, RandomPolicy), ``drift`` (DriftDetector); composed by
``device_loop`` (DeviceRuntime), ``stream`` (run_stream), ``adaptation`` (pretext-loss
adaptation on a copy of the encoder), ``replay`` (bounded buffer) and ``raw``
(raw-feature baseline); ``fedssl device`` (simulations/device_replay/cli.py) drives them. Each raises its own
``ValueError`` subclass naming the bad input (EmbedError, HeadError, BanditError, ...).
Latencies: ``python -m simulations.bench.runtime``.

Decisions run on one core: the embedders use one thread and the fits limit BLAS to
one; a device should also run its loop under ``threadpoolctl.threadpool_limits(1)``
(or ``OPENBLAS_NUM_THREADS=1``), as ``simulations/bench/runtime.py`` does.

Importing this package imports nothing heavy; torch is imported only by the torch
embedders, so an ONNX-only device needs numpy and onnxruntime (and scikit-learn to
fit the head).
"""
