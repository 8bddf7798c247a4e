"""Every table of the engine, in one place, for migrations and for creating test databases.

Importing a model module registers its tables on ``Base.metadata``; this list is explicit so the
schema never depends on which modules happened to be imported first.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from callcenter.audit import models as audit_models
from callcenter.auth import models as auth_models
from callcenter.calls import models as call_models
from callcenter.calls import records as call_records
from callcenter.dispatch import models as dispatch_models
from callcenter.recording import models as recording_models
from callcenter.storage.base import Base
from callcenter.tickets import models as ticket_models
from callcenter.transcription import jobmodels as transcription_models

MODEL_MODULES = (
    audit_models,
    auth_models,
    call_models,
    call_records,
    dispatch_models,
    recording_models,
    ticket_models,
    transcription_models,
)


def metadata() -> MetaData:
    return Base.metadata
