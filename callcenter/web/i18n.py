"""Words on the web pages, in Bahasa Indonesia (the default) and English.

Every visible string of the pages comes from :data:`MESSAGES` through :func:`t`. The language is
chosen per request by :func:`choose`: ``?lang=id|en`` (remembered in the ``cc_lang`` cookie),
else the cookie, else the browser's Accept-Language, else Bahasa Indonesia.
"""

from __future__ import annotations

DEFAULT_LANG = "id"
LANGS = ("id", "en")
LANG_COOKIE = "cc_lang"
LANG_NAMES = {"id": "Bahasa Indonesia", "en": "English"}

# key -> (Bahasa Indonesia, English)
_TABLE: dict[str, tuple[str, str]] = {
    # page chrome
    "app.title": ("Command Center", "Command Center"),
    "app.language": ("Bahasa", "Language"),
    "app.logout": ("Keluar", "Log out"),
    "app.logged_in_as": ("Masuk sebagai", "Logged in as"),
    "app.failed": ("Gagal", "Failed"),
    "app.network_error": ("Server tidak dapat dihubungi; coba lagi.",
                          "The server did not answer; try again."),
    "app.none": ("—", "—"),
    "role.agent": ("Agen", "Agent"),
    "role.supervisor": ("Supervisor", "Supervisor"),
    "role.auditor": ("Auditor", "Auditor"),
    "role.admin": ("Administrator", "Administrator"),
    "role.opd-operator": ("Operator OPD", "OPD operator"),
    "role.integration": ("Integrasi", "Integration"),
    # login
    "login.title": ("Masuk", "Log in"),
    "login.heading": ("Masuk ke layanan OPD", "Log in to the OPD service"),
    "login.username": ("Nama pengguna", "Username"),
    "login.password": ("Kata sandi", "Password"),
    "login.submit": ("Masuk", "Log in"),
    "login.busy": ("Memeriksa…", "Checking…"),
    "login.wrong": ("Nama pengguna atau kata sandi salah.", "Wrong username or password."),
    "login.throttled": ("Terlalu banyak percobaan masuk yang gagal. Coba lagi dalam {minutes} menit.",
                        "Too many failed logins. Try again in {minutes} minutes."),
    # queue
    "queue.title": ("Antrean tiket", "Ticket queue"),
    "queue.heading": ("Antrean tiket", "Ticket queue"),
    "queue.agency": ("Instansi", "Agency"),
    "queue.all_agencies": ("Semua instansi", "All agencies"),
    "queue.filter_status": ("Status", "Status"),
    "queue.filter_open": ("Semua (yang terbuka dulu)", "All (open ones first)"),
    "queue.filter_submit": ("Tampilkan", "Show"),
    "queue.count": ("Jumlah tiket", "Tickets"),
    "queue.empty": ("Tidak ada tiket.", "No tickets."),
    "queue.closed_limited": ("Hanya tiket tertutup terbaru yang tampil; pilih status untuk melihat lebih.",
                             "Only the latest closed tickets are shown; pick a status to see more."),
    "queue.read_only": ("Hanya baca", "Read-only"),
    # ticket fields
    "field.number": ("Nomor", "Number"),
    "field.status": ("Status", "Status"),
    "field.priority": ("Prioritas", "Priority"),
    "field.channel": ("Kanal", "Channel"),
    "field.category": ("Kategori", "Category"),
    "field.agency": ("OPD", "Agency"),
    "field.summary": ("Ringkasan", "Summary"),
    "field.description": ("Uraian", "Description"),
    "field.location": ("Lokasi", "Location"),
    "field.district": ("Kecamatan", "District"),
    "field.created_at": ("Dibuat", "Created"),
    "field.updated_at": ("Diperbarui", "Updated"),
    "field.dispatched_at": ("Diteruskan ke OPD", "Dispatched"),
    "field.first_response_at": ("Tanggapan pertama", "First response"),
    "field.resolved_at": ("Ditutup", "Closed"),
    "field.escalated_at": ("Dieskalasi", "Escalated"),
    "field.follow_up_by": ("Batas tindak lanjut", "Follow-up deadline"),
    "field.verify_by": ("Batas verifikasi", "Verification deadline"),
    "field.rejection_reason": ("Alasan penolakan", "Reason for rejection"),
    "field.forwarded_to": ("Diteruskan ke", "Forwarded to"),
    "field.reopen_count": ("Dibuka kembali", "Reopened"),
    "field.reporter": ("Pelapor", "Reporter"),
    "field.reporter_name": ("Nama", "Name"),
    "field.reporter_contact": ("Kontak", "Contact"),
    "field.reporter_number": ("Nomor telepon", "Phone number"),
    "field.deadlines": ("Tenggat", "Deadlines"),
    "field.overdue": ("Terlambat", "Overdue"),
    "reporter.hidden": ("Identitas pelapor dirahasiakan", "Reporter's identity is confidential"),
    "overdue.badge": ("Terlambat", "Overdue"),
    "overdue.verify": ("Terlambat verifikasi", "Verification overdue"),
    "overdue.follow_up": ("Terlambat tindak lanjut", "Follow-up overdue"),
    # statuses
    "status.menunggu": ("Menunggu", "Waiting"),
    "status.diproses": ("Diproses", "In process"),
    "status.selesai": ("Selesai", "Done"),
    "status.ditolak": ("Ditolak", "Rejected"),
    # priorities
    "priority.low": ("Rendah", "Low"),
    "priority.normal": ("Normal", "Normal"),
    "priority.high": ("Tinggi", "High"),
    "priority.critical": ("Kritis", "Critical"),
    # channels
    "channel.112": ("112", "112"),
    "channel.hotline": ("Hotline pengaduan", "Complaint hotline"),
    "channel.web": ("Situs web", "Website"),
    "channel.sms": ("SMS", "SMS"),
    "channel.api": ("Aplikasi lain", "Other application"),
    "channel.forwarded": ("Diteruskan instansi lain", "Forwarded by another instance"),
    # the trail
    "trail.heading": ("Riwayat", "History"),
    "trail.at": ("Waktu", "Time"),
    "trail.actor": ("Oleh", "By"),
    "trail.action": ("Tindakan", "Action"),
    "trail.change": ("Status", "Status"),
    "trail.note": ("Catatan", "Note"),
    "trail.empty": ("Belum ada riwayat.", "No history yet."),
    "action.created": ("Dibuat", "Created"),
    "action.dispatched": ("Diteruskan ke OPD", "Dispatched to agency"),
    "action.start": ("Diambil", "Claimed"),
    "action.resolve": ("Diselesaikan", "Resolved"),
    "action.reject": ("Ditolak", "Rejected"),
    "action.release": ("Dikembalikan ke antrean", "Released to the queue"),
    "action.reopen": ("Dibuka kembali", "Reopened"),
    "action.escalated": ("Dieskalasi", "Escalated"),
    "action.forwarded": ("Diteruskan ke instansi lain", "Forwarded to another instance"),
    "action.comment": ("Komentar", "Comment"),
    "action.reviewed": ("Dinilai", "Reviewed"),
    "action.call_linked": ("Panggilan ditautkan", "Call linked"),
    # actions on the detail page
    "actions.heading": ("Tindakan", "Actions"),
    "actions.note": ("Catatan", "Note"),
    "actions.reason": ("Alasan penolakan (wajib untuk Tolak)", "Reason for rejection (required to reject)"),
    "actions.claim": ("Ambil", "Claim"),
    "actions.done": ("Selesai", "Done"),
    "actions.reject": ("Tolak", "Reject"),
    "actions.release": ("Kembalikan", "Release"),
    "actions.comment": ("Komentar", "Comment"),
    "actions.escalate": ("Eskalasi", "Escalate"),
    "actions.none": ("Tidak ada tindakan untuk status ini.", "No actions for this status."),
    "actions.busy": ("Mengirim…", "Sending…"),
    "actions.reason_required": ("Isi alasan penolakan.", "Fill in the reason for rejection."),
    "actions.note_required": ("Isi komentar pada kolom catatan.", "Write the comment in the note field."),
    "detail.back": ("Kembali ke antrean", "Back to the queue"),
    "detail.title": ("Tiket", "Ticket"),
    # errors
    "error.not_found.title": ("Tidak ditemukan", "Not found"),
    "error.not_found.text": ("Tiket ini tidak ada atau tidak dapat Anda lihat.",
                             "This ticket does not exist or you may not see it."),
    "error.forbidden.title": ("Tidak diizinkan", "Not allowed"),
    "error.forbidden.text": ("Peran Anda tidak dapat melihat tiket.", "Your role may not see tickets."),
    "error.live.title": ("Tidak diizinkan", "Not allowed"),
    "error.live.text": ("Peran Anda tidak dapat membuka halaman ini.", "Your role may not open this page."),
    "error.audit.title": ("Tidak diizinkan", "Not allowed"),
    "error.audit.text": ("Hanya auditor dan administrator yang dapat membuka rekaman.",
                         "Only auditors and administrators may open recordings."),
    "error.recording_not_found.title": ("Tidak ditemukan", "Not found"),
    "error.recording_not_found.text": ("Rekaman ini tidak ada.", "This recording does not exist."),
    # transcripts on the ticket page
    "transcripts.heading": ("Transkrip panggilan", "Call transcripts"),
    "transcripts.hidden": ("Transkrip dirahasiakan untuk melindungi pelapor.",
                           "Transcripts are withheld to protect the reporter."),
    "transcripts.empty": ("Belum ada transkrip.", "No transcripts yet."),
    "speaker.penelepon": ("Penelepon", "Caller"),
    "speaker.petugas": ("Petugas", "Agent"),
    "speaker.campuran": ("Campuran", "Mixed"),
    "speaker.rekaman": ("Rekaman", "Recording"),
    "transcription.transcribed": ("Ditranskripsi", "Transcribed"),
    "transcription.queued": ("Belum ditranskripsi: dalam antrean", "Not transcribed yet: queued"),
    "transcription.failed": ("Transkripsi gagal", "Transcription failed"),
    "transcription.not_queued": ("Tanpa transkrip", "No transcript"),
    # auditor: recording search
    "nav.recordings": ("Rekaman", "Recordings"),
    "nav.audit_log": ("Log audit", "Audit log"),
    "auditlog.title": ("Log audit", "Audit log"),
    "auditlog.intro": ("Setiap pemutaran, unduhan, penahanan hukum, pemeriksaan dan penghapusan rekaman. "
                       "Setiap entri memuat hash entri sebelumnya.",
                       "Every playback, download, legal hold, check and deletion of a recording. "
                       "Each entry holds the hash of the one before."),
    "auditlog.verify": ("Periksa rantai hash sekarang", "Check the hash chain now"),
    "auditlog.chain_ok": ("Rantai utuh: {entries} entri, kepala {seq}.",
                          "The chain is intact: {entries} entries, head {seq}."),
    "auditlog.chain_bad": ("RANTAI RUSAK: {problems} masalah pada {entries} entri.",
                           "THE CHAIN IS BROKEN: {problems} problem(s) in {entries} entries."),
    "auditlog.seq": ("No.", "No."),
    "auditlog.at": ("Waktu", "Time"),
    "auditlog.actor": ("Pengguna", "User"),
    "auditlog.action": ("Tindakan", "Action"),
    "auditlog.object": ("Objek", "Object"),
    "auditlog.detail": ("Rincian", "Detail"),
    "auditlog.empty": ("Tidak ada entri yang cocok.", "No matching entries."),
    "auditaction.recording.play": ("Diputar", "Played"),
    "auditaction.recording.download": ("Diunduh", "Downloaded"),
    "auditaction.recording.delete": ("Dihapus retensi", "Deleted by retention"),
    "auditaction.recording.hold": ("Ditahan (hukum)", "Legal hold placed"),
    "auditaction.recording.release": ("Penahanan dilepas", "Legal hold lifted"),
    "auditaction.recording.verify": ("Integritas diperiksa", "Integrity checked"),
    "audit.title": ("Pencarian rekaman", "Recording search"),
    "audit.words": ("Kata dalam transkrip", "Words in the transcript"),
    "audit.words_hint": ("Semua kata harus ada; kata* mencari awalan.",
                         "All words must occur; word* matches a prefix."),
    "audit.since": ("Dari tanggal", "From date"),
    "audit.until": ("Sampai tanggal", "To date"),
    "audit.caller": ("Nomor penelepon", "Caller number"),
    "audit.agent": ("Agen", "Agent"),
    "audit.queue": ("Antrean", "Queue"),
    "audit.ticket": ("Nomor tiket", "Ticket number"),
    "audit.leg": ("Sisi", "Side"),
    "audit.leg_any": ("Kedua sisi", "Both sides"),
    "audit.search": ("Cari", "Search"),
    "audit.results": ("Hasil pencarian", "Results"),
    "audit.latest": ("Transkrip terbaru", "Latest transcripts"),
    "audit.no_results": ("Tidak ada rekaman yang cocok.", "No matching recordings."),
    "audit.bad_search": ("Pencarian tidak dapat dijalankan", "The search cannot run"),
    "audit.when": ("Waktu panggilan", "Call time"),
    "audit.speaker": ("Pembicara", "Speaker"),
    "audit.snippet": ("Cuplikan", "Snippet"),
    "audit.open": ("Buka", "Open"),
    "audit.confidential": ("dirahasiakan", "confidential"),
    "audit.next": ("Berikutnya", "Next"),
    "audit.previous": ("Sebelumnya", "Previous"),
    # auditor: one recording
    "recording.title": ("Rekaman", "Recording"),
    "recording.back": ("Kembali ke pencarian", "Back to the search"),
    "recording.call": ("Panggilan", "Call"),
    "recording.linkedid": ("ID panggilan", "Call ID"),
    "recording.service": ("Layanan", "Service"),
    "recording.started": ("Mulai", "Started"),
    "recording.ended": ("Berakhir", "Ended"),
    "recording.duration": ("Durasi (detik)", "Duration (seconds)"),
    "recording.tickets": ("Tiket", "Tickets"),
    "recording.player": ("Pemutar", "Player"),
    "recording.kind": ("Berkas", "File"),
    "recording.download": ("Unduh", "Download"),
    "recording.audited": ("Setiap pemutaran dan unduhan dicatat dalam log audit.",
                          "Every playback and download is recorded in the audit log."),
    "recording.deleted": ("Berkas rekaman ini dihapus oleh kebijakan retensi pada",
                          "The files of this recording were deleted by the retention policy on"),
    "recording.no_audio": ("Tidak ada berkas yang dapat diputar.", "No file can be played."),
    "recording.transcripts": ("Transkrip", "Transcripts"),
    "recording.no_transcript": ("Belum ada transkrip.", "No transcript yet."),
    "recording.attempts": ("percobaan", "attempts"),
    "job.pending": ("Menunggu transkripsi.", "Waiting to be transcribed."),
    "job.running": ("Sedang ditranskripsi.", "Being transcribed."),
    "job.done": ("Transkripsi selesai.", "Transcribed."),
    "job.failed": ("Transkripsi gagal", "Transcription failed"),
    "recording.seek": ("Putar dari sini", "Play from here"),
    "recording.engine": ("Mesin", "Engine"),
    "recording.integrity": ("Integritas berkas", "File integrity"),
    "recording.status": ("Status", "Status"),
    "recording.size": ("Ukuran (bita)", "Size (bytes)"),
    "recording.format": ("Format", "Format"),
    "recording.rate": ("Laju sampel (Hz)", "Sample rate (Hz)"),
    "recording.checked": ("Diperiksa", "Checked"),
    "recording.failure": ("Masalah", "Problem"),
    "recording.legal_hold": ("Penahanan hukum", "Legal hold"),
    "recording.hold_none": ("Tidak ada", "None"),
    "recording.verify": ("Periksa ulang integritas sekarang", "Check integrity again now"),
    "recording.verify_ok": ("Cocok: {checked} berkas sama persis dengan katalog (SHA-256).",
                            "Intact: {checked} files match the catalogue exactly (SHA-256)."),
    "recording.verify_bad": (
        "TIDAK COCOK: {problems} dari {checked} berkas berubah atau hilang sejak direkam.",
        "NOT INTACT: {problems} of {checked} files changed or missing since recording.",
    ),
    "recording.hold_reason": ("Alasan penahanan (perkara, nomor surat permintaan)",
                              "Reason for the hold (case, request reference)"),
    "recording.hold_reason_release": ("Alasan melepas penahanan", "Reason for lifting the hold"),
    "recording.hold_place": ("Tahan rekaman", "Place legal hold"),
    "recording.hold_release": ("Lepas penahanan", "Lift legal hold"),
    "recording.accesses": ("Riwayat akses", "Access history"),
    "recording.no_accesses": ("Belum pernah diputar.", "Never played."),
    "kind.mixed": ("Gabungan", "Mixed"),
    "kind.caller": ("Sisi penelepon", "Caller's side"),
    "kind.agent": ("Sisi petugas", "Agent's side"),
    "file.ok": ("Utuh", "Intact"),
    "file.failed": ("Gagal", "Failed"),
    "access.recording.play": ("Diputar", "Played"),
    "access.recording.download": ("Diunduh", "Downloaded"),
    # agent console
    "console.title": ("Konsol agen", "Agent console"),
    "console.station": ("Stasiun", "Station"),
    "console.state": ("Status", "State"),
    "console.login": ("Masuk antrean", "Log in to the queues"),
    "console.logout": ("Keluar antrean", "Log out of the queues"),
    "console.pause": ("Jeda", "Pause"),
    "console.resume": ("Lanjutkan", "Resume"),
    "console.reason": ("Alasan jeda", "Pause reason"),
    "console.logged_out": ("Belum masuk antrean", "Not logged in to the queues"),
    "console.connected": ("Tersambung", "Connected"),
    "console.disconnected": ("Terputus; menyambung ulang…", "Disconnected; reconnecting…"),
    "console.waiting_call": ("Menunggu panggilan…", "Waiting for a call…"),
    "console.call": ("Panggilan", "Call"),
    "console.ringing": ("Berdering", "Ringing"),
    "console.answered": ("Tersambung", "Answered"),
    "console.caller": ("Nomor penelepon", "Caller number"),
    "console.queue": ("Antrean", "Queue"),
    "console.wait": ("Lama menunggu (detik)", "Waited (seconds)"),
    "console.ivr": ("Jawaban IVR", "IVR answers"),
    "console.ticket": ("Tiket panggilan ini", "Ticket of this call"),
    "console.new_ticket": ("Buat tiket", "Create the ticket"),
    "console.save_ticket": ("Simpan tiket", "Save the ticket"),
    "console.saved": ("Tiket tersimpan", "Ticket saved"),
    "console.history": ("Riwayat penelepon", "Caller history"),
    "console.earlier_tickets": ("Tiket sebelumnya", "Earlier tickets"),
    "console.earlier_calls": ("Panggilan sebelumnya", "Earlier calls"),
    "console.none": ("Tidak ada.", "None."),
    "console.blocked": ("Nomor ini sedang diblokir", "This number is blocked"),
    "console.marks": ("Penilaian panggilan sebelumnya", "Earlier calls were judged"),
    "console.classify": ("Jenis panggilan", "Kind of call"),
    "class.darurat": ("Darurat", "Emergency"),
    "class.informasi": ("Informasi", "Information"),
    "class.iseng": ("Iseng", "Prank"),
    "class.hantu": ("Hantu / diam", "Ghost / silent"),
    "console.classified": ("Tercatat", "Recorded"),
    "console.block": ("Blokir nomor 24 jam", "Block the number for 24 hours"),
    "console.block_reason": ("Alasan blokir", "Reason for the block"),
    "console.block_done": ("Nomor diblokir", "Number blocked"),
    "console.callbacks": ("Panggilan balik", "Callbacks"),
    "console.call_back": ("Hubungi", "Call back"),
    "console.reached": ("Terhubung", "Reached"),
    "console.no_answer": ("Tidak diangkat", "No answer"),
    "state.available": ("Siap", "Available"),
    "state.ringing": ("Berdering", "Ringing"),
    "state.in_call": ("Sedang menelepon", "In a call"),
    "state.paused": ("Jeda", "Paused"),
    "state.unavailable": ("Tidak tersedia", "Unavailable"),
    # supervisor wallboard
    "wallboard.title": ("Papan pantau", "Wallboard"),
    "wallboard.waiting": ("Penelepon menunggu", "Callers waiting"),
    "wallboard.longest": ("Tunggu terlama (detik)", "Longest wait (seconds)"),
    "wallboard.answered": ("Dijawab", "Answered"),
    "wallboard.abandoned": ("Ditinggalkan", "Abandoned"),
    "wallboard.service_level": ("Tingkat layanan", "Service level"),
    "wallboard.agents": ("Agen", "Agents"),
    "wallboard.agent": ("Agen", "Agent"),
    "wallboard.time_in_state": ("Lama (detik)", "For (seconds)"),
    "wallboard.reason": ("Alasan jeda", "Pause reason"),
    "wallboard.calls": ("Panggilan aktif", "Live calls"),
    "wallboard.updated": ("Diperbarui", "Updated"),
    "wallboard.listen": ("Dengar", "Listen"),
    "wallboard.whisper": ("Bisik", "Whisper"),
    "wallboard.barge": ("Gabung", "Barge"),
    "wallboard.today": ("Hari ini", "Today"),
    "wallboard.offered": ("Masuk", "Offered"),
    "wallboard.target": ("Target", "Target"),
    "wallboard.per_hour": ("Panggilan per jam hari ini", "Calls per hour today"),
    "wallboard.staffing": ("Kebutuhan agen (Erlang C)", "Agents needed (Erlang C)"),
    "wallboard.hour": ("Jam", "Hour"),
    "wallboard.needed": ("Dibutuhkan", "Needed"),
    "wallboard.logged_in": ("Masuk antrean", "Logged in"),
}  # fmt: skip

MESSAGES: dict[str, dict[str, str]] = {
    key: dict(zip(LANGS, texts, strict=True)) for key, texts in _TABLE.items()
}


def t(key: str, lang: str = DEFAULT_LANG) -> str:
    """The text for ``key`` in ``lang``; Bahasa Indonesia if missing there, else the key itself."""
    texts = MESSAGES.get(key)
    if texts is None:
        return key
    return texts.get(lang) or texts[DEFAULT_LANG]


def label(prefix: str, value: str | None, lang: str) -> str:
    """A translated value label (``status.menunggu``); an unknown value is shown as it is."""
    if not value:
        return t("app.none", lang)
    key = f"{prefix}.{value}"
    return t(key, lang) if key in MESSAGES else value


def normalize(value: str | None) -> str | None:
    """``en``, ``en-US``, ``id_ID``, ``in`` (the old code for Indonesian) -> a supported language."""
    if not value:
        return None
    primary = value.strip().lower().replace("_", "-").split("-", 1)[0]
    if primary == "in":
        primary = "id"
    return primary if primary in LANGS else None


def from_accept_language(header: str) -> str | None:
    """The supported language the browser prefers most (highest q, then first listed)."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(header.split(",")[:30]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, number = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(number)
                except ValueError:
                    quality = 0.0
        lang = normalize(tag)
        if lang is None or not quality > 0:
            continue
        candidate = (-quality, position, lang)
        if best is None or candidate < best:
            best = candidate
    return best[2] if best else None


def choose(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    return (
        normalize(query) or normalize(cookie) or from_accept_language(accept_language or "") or DEFAULT_LANG
    )
