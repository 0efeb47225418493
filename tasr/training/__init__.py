"""Training a CTC model, one idea a module:

    config.py       the settings: defaults, the YAML file, section.key=value overrides, checks
    distributed.py  this process's rank, world size and device (torchrun, gloo/NCCL)
    rng.py          seeding, and every random state as plain values for checkpoints
    optim.py        AdamW parameter groups and the learning-rate schedule
    building.py     the tokenizer and the model of a config
    cmvn.py         global CMVN statistics of the training data
    skipped.py      the utterances a run leaves out, counted over all processes
    log.py          train_log.csv and train_curves.png
    checkpoints.py  atomic checkpoint files, their validation figures, choosing and pruning them
    averaging.py    averaging checkpoints into a model file
    loop.py         the Trainer: a run from its folder and manifests to model.pt
"""
