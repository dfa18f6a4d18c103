"""The HRM library: model, layers, losses, optimizers, trainer and checkpoints. Takes tensors; knows no agents."""

from hrm.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint, save_model
from hrm.device import pick_device
from hrm.losses import IGNORE_INDEX, act_loss
from hrm.model import Carry, Hrm, HrmConfig, HrmOutput, Prediction
from hrm.optim import AdamATan2, SignSGD, warmup_cosine
from hrm.trainer import TrainConfig, Trainer, evaluate, fit

__all__ = ["AdamATan2", "Carry", "CheckpointError", "Hrm", "HrmConfig", "HrmOutput", "IGNORE_INDEX", "Prediction",
           "SignSGD", "TrainConfig", "Trainer", "act_loss", "evaluate", "fit", "load_checkpoint", "load_model",
           "pick_device", "save_checkpoint", "save_model", "warmup_cosine"]
