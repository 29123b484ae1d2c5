"""Image features from raw images: the preprocessing, a pluggable extractor (VGG19 fc7 by
default) and a batched, resumable extraction loop.

Preprocessing (what VGG19 was trained with): the shorter side resized to 256 pixels
(bilinear), the centre ``224 x 224`` crop, RGB scaled to ``[0, 1]`` and normalised with the
ImageNet mean and standard deviation,

.. math:: \\tilde x_{c,u,v} = (x_{c,u,v} / 255 - \\mu_c) / \\sigma_c,\\quad
          \\mu = (0.485, 0.456, 0.406),\\ \\sigma = (0.229, 0.224, 0.225).

It is implemented with Pillow and NumPy so that only the VGG19 weights need torchvision.
An *extractor* is any callable (usually an ``nn.Module``) mapping a float tensor
``(B, 3, 224, 224)`` to ``(B, D)`` features; :func:`vgg19_fc7` builds the standard one
(4096-d fc7 after its ReLU, as in the UGACH authors' feature files).
README: "Data sets from the official releases".
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..utils import atomic_write, get_device

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

Extractor = Callable[[torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------- file sources


class FileSource:
    """Read files by relative path from a folder or from a zip archive (opened lazily, once
    per process, so that DataLoader workers each get their own handle)."""

    def __init__(self, path: str | os.PathLike, prefix: str = "") -> None:
        self.path = Path(path)
        self.prefix = prefix.strip("/")
        self.is_zip = self.path.is_file()
        self._zip: zipfile.ZipFile | None = None
        self._pid = -1
        self._names: set[str] | None = None

    def _zf(self) -> zipfile.ZipFile:
        if self._zip is None or self._pid != os.getpid():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as e:
                raise ValueError(f"cannot open {self.path} as a zip archive ({e}); the download "
                                 "is incomplete or damaged: download it again") from e
            self._pid = os.getpid()
        return self._zip

    def _full(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def names(self) -> set[str]:
        """All file paths (relative to the prefix)."""
        if self._names is None:
            if self.is_zip:
                cut = len(self.prefix) + 1 if self.prefix else 0
                self._names = {n[cut:] for n in self._zf().namelist()
                               if not n.endswith("/") and (not self.prefix
                                                           or n.startswith(self.prefix + "/"))}
            else:
                base = self.path / self.prefix if self.prefix else self.path
                self._names = {str(p.relative_to(base)).replace(os.sep, "/")
                               for p in base.rglob("*") if p.is_file()}
        return self._names

    def exists(self, rel: str) -> bool:
        if self.is_zip:
            return rel in self.names()
        return (self.path / self._full(rel)).is_file()

    def describe(self, rel: str) -> str:
        return f"{self.path}:{self._full(rel)}" if self.is_zip else str(self.path / self._full(rel))

    def read(self, rel: str) -> bytes:
        """The bytes of ``rel``; ``FileNotFoundError`` / ``ValueError`` name the file."""
        try:
            if self.is_zip:
                return self._zf().read(self._full(rel))
            return (self.path / self._full(rel)).read_bytes()
        except KeyError:
            raise FileNotFoundError(f"{self.describe(rel)} is missing from the archive") from None
        except FileNotFoundError:
            raise FileNotFoundError(f"missing file: {self.describe(rel)}") from None
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ValueError(f"cannot read {self.describe(rel)} ({type(e).__name__}: {e}); the "
                             "file or archive is damaged or unreadable") from e

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d["_zip"], d["_pid"] = None, -1
        return d


# ------------------------------------------------------------------------ preprocessing


def preprocess(data: bytes, name: str = "image", resize: int = 256, crop: int = 224
               ) -> np.ndarray:
    """Decode one image and return the normalised centre crop, ``(3, crop, crop)`` float32.

    Shorter side -> ``resize`` (bilinear; the longer side scaled and truncated as in
    torchvision's ``Resize``), centre ``crop`` (offset rounded as in ``CenterCrop``), then
    :math:`(x/255 - \\mu)/\\sigma`.  A truncated or undecodable file raises ``ValueError``
    naming ``name``.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            im = im.convert("RGB")
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError ... on bad files
        raise ValueError(f"cannot decode image {name} ({type(e).__name__}: {e}); the file is "
                         "truncated or damaged: unpack or download the archive again") from e
    w, h = im.size
    if w <= h:
        nw, nh = resize, int(resize * h / w)
    else:
        nw, nh = int(resize * w / h), resize
    im = im.resize((nw, nh), Image.BILINEAR)
    top, left = int(round((nh - crop) / 2.0)), int(round((nw - crop) / 2.0))
    im = im.crop((left, top, left + crop, top + crop))
    x = np.asarray(im, dtype=np.float32) / 255.0               # (crop, crop, 3)
    x = (x - MEAN) / STD                                       # x~ = (x/255 - mu) / sigma
    return np.ascontiguousarray(x.transpose(2, 0, 1))         # (3, crop, crop)


class ImageFiles(torch.utils.data.Dataset):
    """``members[i]`` of ``source``, preprocessed (:func:`preprocess`)."""

    def __init__(self, source: FileSource, members: Sequence[str], crop: int = 224,
                 resize: int = 256) -> None:
        self.source, self.members, self.crop, self.resize = source, list(members), crop, resize

    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, i: int) -> torch.Tensor:
        rel = self.members[i]
        return torch.from_numpy(preprocess(self.source.read(rel), self.source.describe(rel),
                                           self.resize, self.crop))


# ---------------------------------------------------------------------------- extractors


def vgg19_fc7() -> torch.nn.Module:
    """VGG19 (ImageNet weights) cut after fc7 and its ReLU: ``(B, 3, 224, 224) -> (B, 4096)``.

    Needs torchvision (``pip install torchvision`` matching your torch; Colab has it) and
    downloads the weights once into torch's cache.  In eval mode, so dropout is off.
    """
    try:
        import torchvision
    except ImportError:
        raise ImportError(
            "VGG19 fc7 features need torchvision: pip install torchvision (the build that "
            "matches your torch; Colab has it), or pass extractor= any nn.Module mapping "
            "(B, 3, 224, 224) images to (B, D) features") from None
    weights = torchvision.models.VGG19_Weights.IMAGENET1K_V1
    net = torchvision.models.vgg19(weights=weights)
    net.classifier = net.classifier[:5]  # fc6, ReLU, Dropout, fc7, ReLU
    return net.eval()


EXTRACTORS: dict[str, Callable[[], Extractor]] = {"vgg19_fc7": vgg19_fc7}


def get_extractor(extractor: str | Extractor | None) -> tuple[str, Extractor]:
    """``(name, callable)`` for a registered name, a callable (named after its class), or
    ``None`` (VGG19 fc7)."""
    if extractor is None or isinstance(extractor, str):
        name = extractor or "vgg19_fc7"
        if name not in EXTRACTORS:
            raise ValueError(f"unknown feature extractor {name!r}; use one of "
                             f"{sorted(EXTRACTORS)} or pass an nn.Module")
        return name, EXTRACTORS[name]()
    if not callable(extractor):
        raise TypeError("extractor must be a name, an nn.Module or a callable")
    name = getattr(extractor, "feature_name", None) or type(extractor).__name__.lower()
    return str(name), extractor


# ---------------------------------------------------------------------------- extraction


def weights_fingerprint(extractor: Extractor) -> str:
    """sha1 of an ``nn.Module`` extractor's parameters and buffers ("" for a plain
    callable): part files of other weights under the same name are never mixed in."""
    if not isinstance(extractor, torch.nn.Module):
        return ""
    h = hashlib.sha1()
    for k, t in extractor.state_dict().items():
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _key(name: str, members: Sequence[str], chunk: int, weights: str = "") -> str:
    h = hashlib.sha1(f"{name}|{chunk}|{weights}|".encode() if weights else
                     f"{name}|{chunk}|".encode())
    h.update("\n".join(members).encode())
    return h.hexdigest()[:12]


def _load_part(path: Path, rows: int) -> np.ndarray | None:
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if a.ndim != 2 or a.shape[0] != rows or not np.isfinite(a).all():
        return None
    return a


@torch.no_grad()
def extract_features(source: FileSource, members: Sequence[str], extractor: Extractor,
                     parts_dir: str | os.PathLike, name: str = "features", batch_size: int = 64,
                     device: str | torch.device | None = None, chunk: int = 2048,
                     num_workers: int = 0, progress: bool = True) -> np.ndarray:
    """Features of ``members`` (image paths in ``source``), ``(n, D)`` float32, in order.

    Images are decoded and preprocessed (:func:`preprocess`) in a ``DataLoader`` and run
    through ``extractor`` in batches of ``batch_size`` on ``device`` (CUDA when available).
    Every ``chunk`` images the rows are saved atomically to
    ``parts_dir/<key>/part_<start>_<end>.npy``; a later call with the same members,
    extractor name and weights (:func:`weights_fingerprint`) skips the chunks already there,
    so an interrupted extraction resumes.
    The part files are left for the caller to remove once the result is stored.
    """
    members = list(members)
    if not members:
        raise ValueError("no images to extract features from")
    dev = get_device(device)
    folder = parts_folder(parts_dir, name, members, chunk, extractor)
    if isinstance(extractor, torch.nn.Module):
        extractor = extractor.to(dev).eval()
    folder.mkdir(parents=True, exist_ok=True)
    spans = [(s, min(s + chunk, len(members))) for s in range(0, len(members), chunk)]
    parts: dict[int, np.ndarray] = {}
    for s, e in spans:
        a = _load_part(folder / f"part_{s:07d}_{e:07d}.npy", e - s)
        if a is not None:
            parts[s] = a
    done = sum(e - s for s, e in spans if s in parts)
    bar = tqdm(total=len(members), initial=done, desc=f"{name} features", unit="img",
               disable=not progress)
    try:
        for s, e in spans:
            if s in parts:
                continue
            loader = torch.utils.data.DataLoader(
                ImageFiles(source, members[s:e]), batch_size=batch_size, shuffle=False,
                num_workers=num_workers, pin_memory=dev.type == "cuda")
            rows = []
            for x in loader:
                f = extractor(x.to(dev, non_blocking=True))
                if f.ndim != 2 or f.shape[0] != x.shape[0]:
                    raise ValueError(f"the feature extractor returned shape {tuple(f.shape)} "
                                     f"for a batch of {x.shape[0]} images; it must return "
                                     "(batch, dimensions)")
                rows.append(f.float().cpu().numpy())
                bar.update(x.shape[0])
            a = np.concatenate(rows).astype(np.float32, copy=False)
            if not np.isfinite(a).all():
                raise ValueError("the feature extractor produced NaN or inf values")

            def _w(tmp: str, a: np.ndarray = a) -> None:
                with open(tmp, "wb") as fh:
                    np.save(fh, a)
            atomic_write(folder / f"part_{s:07d}_{e:07d}.npy", _w)
            parts[s] = a
    finally:
        bar.close()
    dims = {a.shape[1] for a in parts.values()}
    if len(dims) != 1:
        raise ValueError(f"saved feature parts in {folder} disagree on the dimension ({dims}); "
                         "delete that folder and run again")
    return np.concatenate([parts[s] for s, _ in spans])


def parts_folder(parts_dir: str | os.PathLike, name: str, members: Sequence[str],
                 chunk: int = 2048, extractor: Extractor | None = None) -> Path:
    """The folder :func:`extract_features` keeps its partial results in."""
    weights = weights_fingerprint(extractor) if extractor is not None else ""
    return Path(parts_dir) / _key(name, list(members), chunk, weights)


__all__ = ["EXTRACTORS", "FileSource", "ImageFiles", "extract_features", "get_extractor",
           "parts_folder", "preprocess", "vgg19_fc7", "weights_fingerprint"]
