"""Which mail folders a channel never reads, for IMAP and Microsoft 365 alike. Pure rules.

ClientSuccess's document: mail is brought in only if it is not "in the calendar, contacts,
journal, conversation history, notes, tasks, RSS feeds, clutter, junk, drafts, or shared
folders". Those kinds hold no mail a person exchanged with a contact (or none they meant to
send), so no mode reads them; the rest of the table says which modes read sent mail, deleted
items and clutter. A folder is known by its RFC 6154 SPECIAL-USE flag or Graph well-known
name where the server gives one, else by the name Exchange, Outlook.com, Gmail or Dovecot
gives it at the top of the mailbox (English and the common localised names), and a folder
inside a skipped one is skipped with it (Calendar/Birthdays, RSS Feeds/<a feed>)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

TICKETS, ENGAGEMENTS, SALES = "tickets", "engagements", "sales"
NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Kind:
    name: str
    read_by: frozenset[str]  # the modes that read folders of this kind
    special_use: str | None = None  # IMAP SPECIAL-USE flag, lower case
    well_known: tuple[str, ...] = ()  # Graph wellKnownName values
    names: tuple[str, ...] = ()  # top-level folder names, lower case


KINDS = (
    # Copies of what the owner sent are engagements and sales mail; a help desk files none.
    Kind("sent", frozenset({ENGAGEMENTS, SALES}), "\\sent", ("sentitems",), (
        "sent", "sent items", "sent messages", "sent mail", "gesendete elemente", "gesendet",
        "éléments envoyés", "envoyés", "elementos enviados", "enviados", "posta inviata",
        "elementi inviati", "verzonden items", "itens enviados", "отправленные")),
    # The document does not exclude deleted items: mail with a contact that the owner
    # deleted after reading is still an engagement.
    Kind("deleted items", frozenset({ENGAGEMENTS}), "\\trash", ("deleteditems",), (
        "trash", "deleted items", "deleted messages", "deleted", "bin", "papierkorb",
        "gelöschte elemente", "éléments supprimés", "corbeille", "elementos eliminados",
        "papelera", "posta eliminata", "elementi eliminati", "cestino", "verwijderde items",
        "prullenbak", "itens excluídos", "lixeira", "удаленные", "корзина")),
    Kind("junk", NONE, "\\junk", ("junkemail",), (
        "junk", "junk e-mail", "junk email", "spam", "bulk mail", "junk-e-mail",
        "courrier indésirable", "correo no deseado", "posta indesiderata",
        "ongewenste e-mail", "lixo eletrônico", "нежелательная почта", "спам")),
    Kind("drafts", NONE, "\\drafts", ("drafts",), (
        "drafts", "entwürfe", "brouillons", "borradores", "bozze", "concepten", "rascunhos",
        "черновики")),
    # Not sent yet: once it goes, its copy in Sent Items is read instead.
    Kind("outbox", NONE, None, ("outbox",), (
        "outbox", "postausgang", "boîte d'envoi", "bandeja de salida", "posta in uscita",
        "postvak uit", "caixa de saída", "исходящие")),
    # Low-priority mail Exchange set aside: not for engagements (the document), but a help
    # desk or a sales agent must not lose a customer's mail to it.
    Kind("clutter", frozenset({TICKETS, SALES}), None, ("clutter",), (
        "clutter", "courrier pêle-mêle")),
    Kind("calendar", NONE, None, (), (
        "calendar", "kalender", "calendrier", "calendario", "agenda", "calendário",
        "календарь")),
    Kind("contacts", NONE, None, (), (
        "contacts", "kontakte", "contactos", "contatti", "contactpersonen", "contatos",
        "контакты")),
    Kind("journal", NONE, None, (), ("journal", "diario", "dagboek", "diário", "дневник")),
    Kind("notes", NONE, None, (), (
        "notes", "notizen", "notas", "note", "notities", "заметки")),
    Kind("tasks", NONE, None, (), (
        "tasks", "aufgaben", "tâches", "tareas", "attività", "taken", "tarefas", "задачи")),
    Kind("conversation history", NONE, None, ("conversationhistory",), (
        "conversation history", "unterhaltungsverlauf", "historique des conversations",
        "historial de conversaciones", "cronologia conversazioni", "gespreksgeschiedenis",
        "histórico de conversas", "журнал разговоров", "chats")),
    Kind("rss feeds", NONE, None, (), (
        "rss feeds", "rss subscriptions", "rss-feeds", "rss-abonnements", "flux rss",
        "fuentes rss", "feed rss", "feeds rss", "rss-каналы")),
    Kind("shared folders", NONE, None, (), (
        "shared folders", "public folders", "other users", "shared", "freigegebene ordner",
        "öffentliche ordner", "dossiers partagés", "dossiers publics", "carpetas compartidas",
        "carpetas públicas")),
    # Outlook's own logs and Exchange's system folders.
    Kind("sync issues", NONE, None, ("syncissues", "conflicts", "localfailures",
                                     "serverfailures"), (
        "sync issues", "synchronisierungsprobleme", "problèmes de synchronisation",
        "problemas de sincronización", "problemi di sincronizzazione",
        "synchronisatieproblemen", "problemas de sincronização")),
    Kind("system", NONE, None, ("scheduled", "recoverableitemsdeletions", "searchfolders")),
    # Gmail's views: every message again (All Mail) or a flag shown as a folder (Starred).
    Kind("all mail", NONE, "\\all"),
    Kind("flagged", NONE, "\\flagged"),
)
WELL_KNOWN = tuple(name for kind in KINDS for name in kind.well_known)


@dataclass(frozen=True)
class Folder:
    """One folder as a connector lists it; `key` is its IMAP name or Graph id."""

    key: str
    name: str  # its own name (the last part of an IMAP path, a Graph displayName)
    parent: str | None  # the key of the folder it is in; None at the top of the mailbox
    flags: tuple[str, ...] = ()  # IMAP flags, as the server sent them
    well_known: str | None = None  # Graph wellKnownName


def _own_reason(folder: Folder, mode: str) -> str | None:
    flags = {f.lower() for f in folder.flags}
    for kind in KINDS:
        if kind.special_use in flags:
            how = "SPECIAL-USE \\" + kind.special_use[1:].capitalize()
        elif folder.well_known and folder.well_known in kind.well_known:
            how = f"well-known name {folder.well_known}"
        elif folder.parent is None and folder.name.strip().lower() in kind.names:
            how = "its name"
        else:
            continue
        return None if mode in kind.read_by else f"{kind.name} ({how})"
    return None


def skipped(folders: Iterable[Folder], mode: str) -> dict[str, str]:
    """Each folder `mode` does not read (key → why); one inside a skipped folder is skipped
    with it."""
    listed = {f.key: f for f in folders}
    own = {key: _own_reason(f, mode) for key, f in listed.items()}
    out: dict[str, str] = {}
    for key, folder in listed.items():
        reason, seen, parent = own[key], {key}, folder.parent
        while reason is None and parent in listed and parent not in seen:
            seen.add(parent)
            if own[parent] is not None:
                reason = f"inside {listed[parent].name}: {own[parent]}"
            parent = listed[parent].parent
        if reason is not None:
            out[key] = reason
    return out
