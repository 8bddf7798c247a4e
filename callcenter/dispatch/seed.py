"""A starting directory for a new installation: typical OPDs and complaint categories.

Everything here is ordinary data an administrator can change; seeding only adds what is missing.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.dispatch.directory import create_agency, create_category
from callcenter.dispatch.models import Agency, Category

AGENCIES = (
    ("PUPR", "Dinas Pekerjaan Umum dan Penataan Ruang"),
    ("DISHUB", "Dinas Perhubungan"),
    ("DLH", "Dinas Lingkungan Hidup"),
    ("DINKES", "Dinas Kesehatan / PSC 119"),
    ("DINSOS", "Dinas Sosial"),
    ("DISDUKCAPIL", "Dinas Kependudukan dan Pencatatan Sipil"),
    ("DISDIK", "Dinas Pendidikan"),
    ("SATPOLPP", "Satuan Polisi Pamong Praja"),
    ("DAMKAR", "Pemadam Kebakaran dan Penyelamatan"),
    ("BPBD", "Badan Penanggulangan Bencana Daerah"),
    ("PDAM", "Perusahaan Daerah Air Minum"),
)

# code, Bahasa Indonesia, English, responsible OPD
CATEGORIES = (
    ("JALAN", "Jalan dan jembatan rusak", "Damaged roads and bridges", "PUPR"),
    ("DRAINASE", "Saluran air dan drainase", "Drainage", "PUPR"),
    ("PJU", "Penerangan jalan umum", "Street lights", "PUPR"),
    ("LALIN", "Lampu lalu lintas dan parkir", "Traffic lights and parking", "DISHUB"),
    ("SAMPAH", "Sampah dan pencemaran", "Waste and pollution", "DLH"),
    ("KESEHATAN", "Layanan kesehatan", "Health services", "DINKES"),
    ("SOSIAL", "Bantuan sosial", "Social assistance", "DINSOS"),
    ("ADMINDUK", "KTP, KK dan akta", "ID cards and civil registry", "DISDUKCAPIL"),
    ("PENDIDIKAN", "Sekolah", "Schools", "DISDIK"),
    ("KETERTIBAN", "Ketertiban umum", "Public order", "SATPOLPP"),
    ("KEBAKARAN", "Kebakaran dan penyelamatan", "Fire and rescue", "DAMKAR"),
    ("BENCANA", "Banjir, longsor, gempa", "Floods, landslides, earthquakes", "BPBD"),
    ("AIR", "Air bersih", "Water supply", "PDAM"),
)


def seed_directory(session: Session) -> tuple[int, int]:
    """Add the agencies and categories that are missing; returns how many of each were added."""
    have_agencies = set(session.scalars(select(Agency.code)))
    have_categories = set(session.scalars(select(Category.code)))
    added_agencies = added_categories = 0
    for code, name in AGENCIES:
        if code not in have_agencies:
            create_agency(session, code, name)
            added_agencies += 1
    for code, name_id, name_en, agency in CATEGORIES:
        if code not in have_categories:
            create_category(session, code, name_id, name_en, agency)
            added_categories += 1
    return added_agencies, added_categories
