"""Interface text in Italian and English. The language comes from the ``vigil_lang`` cookie
(set by the switch in the header), else the browser's ``Accept-Language``, else Italian."""

from __future__ import annotations

__all__ = ["LANGS", "pick_lang", "translator"]

LANGS = ("it", "en")
DEFAULT = "it"

TEXT: dict[str, tuple[str, str]] = {  # key: (it, en)
    "title": ("Vigil — console operatori", "Vigil — operator console"),
    "login": ("Accedi", "Log in"),
    "logout": ("Esci", "Log out"),
    "username": ("Utente", "User name"),
    "password": ("Password", "Password"),
    "login_failed": ("Utente o password non validi.", "Wrong user name or password."),
    "login_throttled": (
        "Troppi tentativi: riprovare tra qualche minuto.",
        "Too many attempts: try again in a few minutes.",
    ),
    "alarms": ("Allarmi", "Alarms"),
    "cameras": ("Telecamere", "Cameras"),
    "transits": ("Transiti", "Transits"),
    "audit": ("Registro accessi", "Audit log"),
    "camera": ("Telecamera", "Camera"),
    "type": ("Tipo", "Type"),
    "severity": ("Gravità", "Severity"),
    "state": ("Fase", "State"),
    "status": ("Stato", "Status"),
    "time": ("Ora", "Time"),
    "summary": ("Dettagli", "Summary"),
    "all": ("tutte", "all"),
    "filter": ("Filtra", "Filter"),
    "live": ("in diretta", "live"),
    "offline": ("disconnesso, riconnessione…", "disconnected, reconnecting…"),
    "new": ("nuovo", "new"),
    "acknowledged": ("preso in carico", "acknowledged"),
    "closed": ("chiuso", "closed"),
    "info": ("informazione", "info"),
    "warning": ("avviso", "warning"),
    "critical": ("critico", "critical"),
    "start": ("inizio", "start"),
    "update": ("aggiornamento", "update"),
    "end": ("fine", "end"),
    "alarm": ("Allarme", "Alarm"),
    "metric": ("Misura", "Metric"),
    "value": ("Valore", "Value"),
    "threshold": ("Soglia", "Threshold"),
    "zone": ("Zona", "Zone"),
    "tracks": ("Persone (tracce)", "People (tracks)"),
    "ground_view": ("Vista dall'alto (metri)", "Bird's-eye view (metres)"),
    "no_positions": ("Nessuna posizione nell'evento.", "No positions in this event."),
    "evidence": ("Prova (ritaglio, volti oscurati)", "Evidence (crop, faces blurred)"),
    "no_evidence": ("Nessuna prova allegata.", "No evidence attached."),
    "plate": ("Targa", "Plate"),
    "plate_list": ("Lista", "List"),
    "acknowledge": ("Prendi in carico", "Acknowledge"),
    "close": ("Chiudi", "Close"),
    "reopen": ("Riapri", "Reopen"),
    "add_note": ("Aggiungi nota", "Add note"),
    "note": ("Nota", "Note"),
    "operator": ("Operatore", "Operator"),
    "history": ("Storico dell'allarme", "Alarm history"),
    "action": ("Azione", "Action"),
    "lifecycle": ("Eventi dello stesso allarme", "Events of the same alarm"),
    "ack": ("presa in carico", "acknowledged"),
    "note_action": ("nota", "note"),
    "search_plate": ("Cerca targa", "Search plate"),
    "search": ("Cerca", "Search"),
    "from": ("Dal", "From"),
    "to": ("Al", "To"),
    "results": ("risultati", "results"),
    "no_results": ("Nessun transito trovato.", "No transits found."),
    "search_logged": ("Ogni ricerca è registrata (chi, quando, cosa).", "Every search is logged (who, when, what)."),
    "forbidden": (
        "Accesso negato: il tuo ruolo non consente questa funzione.",
        "Access denied: your role does not allow this.",
    ),
    "transits_unavailable": (
        "Ricerca transiti non disponibile in questa installazione.",
        "Transit search is not available on this installation.",
    ),
    "search_unavailable": (
        "Ricerca non disponibile: la chiave delle targhe non è utilizzabile (vedi il log del server).",
        "Search unavailable: the plate key is not usable (see the server log).",
    ),
    "bad_plate": ("Targa non valida (2-10 lettere o cifre).", "Invalid plate (2-10 letters or digits)."),
    "overview": ("Panoramica telecamere", "Camera overview"),
    "last_event": ("Ultimo evento", "Last event"),
    "open_alarms": ("Allarmi aperti", "Open alarms"),
    "occupancy": ("Presenze", "Occupancy"),
    "risk": ("Livello di rischio", "Risk level"),
    "heatmap": ("Mappa di calore", "Heat map"),
    "heatmap_occupancy": ("Presenza (persone·secondi)", "Presence (person-seconds)"),
    "heatmap_risk": ("Rischio (vicinanza·secondi)", "Risk (proximity-weighted seconds)"),
    "cell": ("cella", "cell"),
    "none": ("—", "—"),
    "role": ("Ruolo", "Role"),
    "user": ("Utente", "User"),
    "target": ("Oggetto", "Target"),
    "detail": ("Dettaglio", "Detail"),
    "client": ("Origine", "Client"),
    "not_found": ("Non trovato.", "Not found."),
    "back": ("Torna agli allarmi", "Back to alarms"),
    "csrf_failed": (
        "Richiesta rifiutata (token CSRF non valido): ricaricare la pagina.",
        "Request refused (invalid CSRF token): reload the page.",
    ),
    "plate_hit": ("Targa segnalata", "Plate hit"),
    "load_more": ("Più vecchi", "Older"),
    "sound_on": ("Attiva suono", "Enable sound"),
    "unreadable": ("payload illeggibile", "unreadable payload"),
    "bad_time": (
        "Data non valida: usare ISO 8601 (2026-11-23, 2026-11-23T07:00:00Z) o secondi epoch (0 compreso).",
        "Invalid time: use ISO 8601 (2026-11-23, 2026-11-23T07:00:00Z) or epoch seconds (0 included).",
    ),
    "time_forms": (
        "ISO 8601 (UTC se senza fuso) o secondi epoch; una data sola in «Al» vale fino a fine giornata.",
        "ISO 8601 (UTC when no offset) or epoch seconds; a date alone in “To” means to the end of that day.",
    ),
    "account": ("Account", "Account"),
    "change_password": ("Cambia password", "Change password"),
    "current_password": ("Password attuale", "Current password"),
    "new_password": ("Nuova password", "New password"),
    "repeat_password": ("Ripeti la nuova password", "Repeat the new password"),
    "password_changed": (
        "Password cambiata: le altre sessioni sono state chiuse.",
        "Password changed: your other sessions have been ended.",
    ),
    "password_mismatch": ("Le due nuove password non coincidono.", "The two new passwords differ."),
    "password_invalid": ("La password deve avere 8-1024 caratteri.", "A password has 8 to 1024 characters."),
    "password_wrong": ("Password attuale errata.", "The current password is wrong."),
    "password_ends_sessions": (
        "Cambiando la password si chiudono tutte le altre sessioni di questo utente.",
        "Changing the password ends every other session of this user.",
    ),
    # --- alarms, not events (H1) ---
    "site": ("Sito", "Site"),
    "sort": ("Ordine", "Order"),
    "sort_priority": ("priorità", "priority"),
    "sort_age": ("più recenti", "newest"),
    "open": ("aperto", "open"),
    "ended": ("terminato", "ended"),
    "alarm_state": ("Stato allarme", "Alarm state"),
    "started": ("Inizio", "Started"),
    "last_seen": ("Ultimo evento", "Last event"),
    "duration": ("Durata", "Duration"),
    "last_value": ("Ultimo valore", "Last value"),
    "worst_value": ("Valore peggiore", "Worst value"),
    "n_events": ("Eventi", "Events"),
    "description": ("Descrizione", "Description"),
    "max_severity": ("Gravità massima", "Highest severity"),
    "by": ("da", "by"),
    "event_phase": ("Fase", "Phase"),
    # --- site map (H6) ---
    "map": ("Mappa", "Map"),
    "map_areas": ("Aree", "Areas"),
    "map_none": (
        "Nessuna mappa configurata: avviare la console con --sites FILE.",
        "No site map configured: start the console with --sites FILE.",
    ),
    "map_scale": ("Scala", "Scale"),
    "map_fov": ("Campo visivo", "Field of view"),
    # --- what happened: live tiles, snapshots, clips (H4) ---
    "tiles": ("Riquadri dal vivo", "Live tiles"),
    "tiles_note": (
        "Un'immagine al secondo per telecamera, persone oscurate; non viene conservata.",
        "One picture a second per camera, people masked; not kept.",
    ),
    "tiles_none": (
        "Riquadri non configurati: avviare la console con --tiles-dir CARTELLA.",
        "No tiles configured: start the console with --tiles-dir FOLDER.",
    ),
    "tiles_empty": ("Ancora nessun riquadro dalle telecamere.", "No tile from the cameras yet."),
    "tile_of": ("Riquadro dal vivo di", "Live tile of"),
    "snapshot": ("Istantanea all'inizio (persone oscurate)", "Snapshot at the start (people masked)"),
    "clip": ("Filmato (secondi prima dell'allarme)", "Clip (seconds before the alarm)"),
    "not_recorded": ("Nessuna immagine: il sito non registra.", "No picture: this site records nothing."),
    # --- account administration, alarm fields ---
    "distance": ("Distanza", "Distance"),
    "accounts": ("Utenti", "Accounts"),
    "accounts_caption": ("Utenti della console", "Console accounts"),
    "account_state": ("Stato utente", "Account state"),
    "sessions": ("Sessioni attive", "Active sessions"),
    "actions": ("Azioni", "Actions"),
    "enabled": ("attivo", "enabled"),
    "disabled": ("disattivato", "disabled"),
    "disable": ("Disattiva", "Disable"),
    "enable": ("Riattiva", "Enable"),
    "change_role": ("Cambia ruolo", "Change role"),
    "reset_password": ("Imposta password", "Reset password"),
    "add_account": ("Nuovo utente", "Add account"),
    "initial_password": ("Password iniziale", "Initial password"),
    "admin_note": (
        "Disattivare un utente, cambiarne il ruolo o la password chiude subito tutte le sue sessioni.",
        "Disabling an account, changing its role or its password ends all its sessions at once.",
    ),
    "account_added": ("Utente aggiunto", "Account added"),
    "account_disabled": ("Utente disattivato", "Account disabled"),
    "account_enabled": ("Utente riattivato", "Account enabled"),
    "account_role_changed": ("Ruolo cambiato", "Role changed"),
    "account_password_reset": ("Password impostata", "Password reset"),
    "supervisor": ("Supervisore", "Supervisor"),
    "admin": ("Amministratore", "Administrator"),
}


def pick_lang(cookie: str | None, accept: str | None) -> str:
    if cookie in LANGS:
        return cookie
    for part in (accept or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGS:
            return code
    return DEFAULT


def translator(lang: str):
    i = LANGS.index(lang) if lang in LANGS else 0

    def t(key: str) -> str:
        pair = TEXT.get(key)
        return pair[i] if pair else key

    return t
