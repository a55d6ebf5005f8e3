"""fpcore: backdoor attacks on deep networks and the Fine-Pruning defense, in small pieces.

cases     -> the case studies (signs, faces, speech): one entry holds every setting of a task
data      -> the data sets as resident tensors (train / val / test)
triggers  -> stickers, sunglasses and beeps; label maps; poisoning
models    -> SignNet, DeepID, SpeechNet, each split at its prune site
train     -> one fit/evaluate loop, seeds
prune     -> channel ranking, the cached pruning sweep, the stopping rule
defenses  -> fine-tuning, pruning and fine-pruning on the validation split
adaptive  -> the pruning-aware attack
store     -> safetensors model files and the trained-model cache
release   -> published model files: download a trained network instead of training it
zoo       -> trained and defended models by name, cached across chapters
plots     -> the book's recurring pictures
chapter   -> what the chapters share: glue, tables, verdict words, loading a chapter's models
"""
from .cases import (CaseStudy, build_model, case_study, default_attack, hyper, load_task,
                    register, resolve_profile)
from .data import Split, Task
from .download import DataMissingError
from .models import DeepID, PrunableNet, SignNet, SpeechNet, shrink
from .triggers import Attack, poison, sticker, sunglasses, tone
from .train import device, evaluate, fit, predict, seed_everything
from .prune import (channel_activity, choose_k, k_for_fraction, naive_prune_curve, prune,
                    prune_curve, prune_order)
from .defenses import Defended, fine_prune, fine_tune, prune_defense
from .adaptive import pruning_aware_attack
from .store import ModelFileError, load_model, save_model
from .zoo import defended_model, trained_model

__version__ = "0.1.0"
