"""ugach_core: Unsupervised Generative Adversarial Cross-modal Hashing (UGACH, AAAI 2018),
re-implemented in PyTorch, with the paper's and the authors' code's variants as presets."""

__version__ = "0.1.0"

from .config import UGACHConfig, fast, get_preset, paper, paper_text, smoke, tuned  # noqa: E402
from .data import CrossModalDataset, load  # noqa: E402
from .model import Discriminator, Generator, HashNet  # noqa: E402
from .train import Trainer  # noqa: E402
from .utils import seed_everything  # noqa: E402

__all__ = ["CrossModalDataset", "Discriminator", "Generator", "HashNet", "Trainer",
           "UGACHConfig", "__version__", "fast", "get_preset", "load", "paper", "paper_text",
           "seed_everything", "smoke", "tuned"]
