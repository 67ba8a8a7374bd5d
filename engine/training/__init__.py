"""Training the demo pack here, stage by stage (``wordbrush train ...``).

Every stage is resumable: it checkpoints to a work folder at least every few minutes and a
new run with the same folder continues where the last one stopped. Seeds are fixed, so a
rerun reproduces the same schedule (not byte-identical weights: CPU kernels reorder sums).

* ``common``: checkpoints, time budgets, progress bars, sample grids, devices.
* ``data``: batches of the world (frames, framed canvas crops) as tensors.
* ``judge``, ``clip``, ``autoencoder``, ``mapping``: one stage each.
* ``demo_pack``: all stages in order, then the pack written with its manifest.
"""
