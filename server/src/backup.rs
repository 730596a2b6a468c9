//! Backups and restores of `relay.sqlite`.
//!
//! A backup is SQLite's online backup, read through a connection of its
//! own: in WAL mode a reader sees one committed version of the whole file
//! while the engine keeps writing, so the copy is consistent and the engine
//! thread never waits for it. It is copied in one step (`step(-1)`), since a
//! backup done in several steps restarts whenever another connection
//! writes, which on a busy relay could be for ever. The copy is made beside
//! its destination under a temporary name, checked (`quick_check`, and that
//! it is a partnerplan database this version opens), then renamed into
//! place, so a half-written backup never carries the final name.
//!
//! A restore needs the relay stopped: a running relay holds an exclusive
//! lock on `relay.lock` in its data directory ([`DataLock`]), which the
//! restore takes too, so neither can start while the other runs.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use partnerplan_sync::access::RESTORE_WAITS_MS;
use partnerplan_sync::store::{BINDINGS_INCOMPLETE, CopySummary, RESTORE_BINDINGS, check_copy};
use partnerplan_sync::{Store, StoreError};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::DATABASE_FILE;

/// The lock file a running relay (or a restore) holds in its data directory.
pub const LOCK_FILE: &str = "relay.lock";

/// Meta keys: when the last backup finished (UTC, ISO 8601) and where it went.
pub const META_LAST: &str = "backup.last";
pub const META_LAST_FILE: &str = "backup.last_file";
/// When a scheduled backup last failed, and why: `<time> <sentence>`.
pub const META_LAST_FAILURE: &str = "backup.last_failure";

/// A sentence that says what went wrong and what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BackupError(pub String);

impl From<StoreError> for BackupError {
    fn from(error: StoreError) -> Self {
        BackupError(crate::store_sentence(&error))
    }
}

/// An exclusive lock on a data directory, released when dropped or when the
/// process ends (however it ends).
#[derive(Debug)]
pub struct DataLock {
    _file: File,
}

impl DataLock {
    /// Takes the lock on `data`, creating the directory if needed. `None`
    /// in the error's place means another process holds it.
    pub fn acquire(data: &Path) -> Result<DataLock, LockError> {
        std::fs::create_dir_all(data).map_err(|e| LockError::Io(folder_problem(data, &e)))?;
        let path = data.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| LockError::Io(folder_problem(data, &e)))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(LockError::Held {
                    pid: holder.trim().parse().ok(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(LockError::Io(format!(
                    "could not lock {}: {e}. Check that this user may write to {}.",
                    path.display(),
                    data.display()
                )));
            }
        }
        // For people and for the error above: which process holds it.
        let _ = file.set_len(0);
        let _ = write!(file, "{}", std::process::id());
        let _ = file.sync_all();
        Ok(DataLock { _file: file })
    }
}

#[derive(Debug, Clone)]
pub enum LockError {
    /// Another process (a running relay, or a restore) holds the lock.
    Held {
        pid: Option<u32>,
    },
    Io(String),
}

impl LockError {
    fn process(pid: Option<u32>) -> String {
        pid.map(|p| format!(" (process {p})")).unwrap_or_default()
    }

    /// The sentence for a relay that cannot start.
    pub fn for_serve(&self, data: &Path) -> String {
        match self {
            LockError::Held { pid } => format!(
                "another relay, or a restore, is already using {}{}. Stop it first, or give this relay its own --data directory.",
                data.display(),
                Self::process(*pid)
            ),
            LockError::Io(sentence) => sentence.clone(),
        }
    }
}

/// A finished backup.
#[derive(Debug, Clone)]
pub struct BackupDone {
    pub path: PathBuf,
    pub bytes: u64,
    pub documents: i64,
}

impl BackupDone {
    /// "The backup is in …, 1.2 MB, holding 14 documents."
    pub fn sentence(&self) -> String {
        format!(
            "The backup is in {} ({}, {}); it passed its check.",
            self.path.display(),
            human_size(self.bytes),
            self.documents_held()
        )
    }

    /// "1 document", "14 documents".
    pub fn documents_held(&self) -> String {
        match self.documents {
            1 => "1 document".to_string(),
            n => format!("{n} documents"),
        }
    }
}

/// Backs `data`'s database up to `to`, consistently, whether or not a relay
/// is running on it.
pub fn backup(data: &Path, to: &Path, force: bool) -> Result<BackupDone, BackupError> {
    let database = data.join(DATABASE_FILE);
    let has_database = std::fs::metadata(&database)
        .map(|m| m.is_file() && m.len() > 0)
        .unwrap_or(false);
    if !has_database {
        return Err(BackupError(format!(
            "there is no relay database in {}. Check that --data names the relay's data directory.",
            data.display()
        )));
    }
    if to.is_dir() {
        return Err(BackupError(format!(
            "{} is a folder. Give the backup a file name, for example --to {}.",
            to.display(),
            to.join(scheduled_name(partnerplan_sync::clock::unix_seconds()))
                .display()
        )));
    }
    if to.exists() && !force {
        return Err(BackupError(format!(
            "{} already exists, so it was left as it is. Choose another name, or add --force to replace it.",
            to.display()
        )));
    }
    let folder = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !folder.is_dir() {
        return Err(BackupError(format!(
            "the folder {} does not exist. Create it first, or choose another place with --to.",
            folder.display()
        )));
    }
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "relay-backup.sqlite".into());
    let partial = folder.join(format!(".{name}.partial-{}", std::process::id()));
    let result = copy_into(&database, &partial, &folder).and_then(|summary| {
        if to.exists() && !force {
            return Err(BackupError(format!(
                "{} appeared while the backup was being made, so it was left as it is. Choose another name, or add --force to replace it.",
                to.display()
            )));
        }
        std::fs::rename(&partial, to).map_err(|e| BackupError(folder_problem(&folder, &e)))?;
        sync_folder(&folder);
        Ok(summary)
    });
    let summary = match result {
        Ok(summary) => summary,
        Err(error) => {
            remove_copy(&partial);
            return Err(error);
        }
    };
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    let path = std::fs::canonicalize(to).unwrap_or_else(|_| to.to_path_buf());
    Ok(BackupDone {
        path,
        bytes,
        documents: summary.documents,
    })
}

/// The online backup of `database` into the new file `partial`, made a
/// single self-contained file (no WAL) and checked.
fn copy_into(database: &Path, partial: &Path, folder: &Path) -> Result<CopySummary, BackupError> {
    remove_copy(partial);
    let source = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| BackupError(format!("could not read {}: {e}.", database.display())))?;
    let _ = source.busy_timeout(Duration::from_secs(10));
    let mut copy = Connection::open(partial).map_err(|e| sqlite_problem(folder, &e))?;
    {
        let backup = Backup::new(&source, &mut copy).map_err(|e| sqlite_problem(folder, &e))?;
        let mut waits = 0;
        loop {
            match backup.step(-1).map_err(|e| sqlite_problem(folder, &e))? {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked => {
                    waits += 1;
                    if waits > 200 {
                        return Err(BackupError(format!(
                            "{} stayed busy for 20 seconds, so no backup was made. Try again; if it persists, stop other programs using it.",
                            database.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => {}
            }
        }
    }
    drop(source);
    // One file a person can copy about, with nothing in a -wal beside it.
    copy.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get::<_, String>(0))
        .map_err(|e| sqlite_problem(folder, &e))?;
    copy.close().map_err(|(_, e)| sqlite_problem(folder, &e))?;
    File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| BackupError(folder_problem(folder, &e)))?;
    check_copy(partial).map_err(|e| {
        BackupError(format!(
            "the copy failed its check, so it was deleted ({e}). The relay's database was not changed; try again."
        ))
    })
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub database: PathBuf,
    pub set_aside: Option<PathBuf>,
    pub documents: i64,
}

/// Puts the backup `from` in place of `data`'s database. Refuses while a
/// relay runs on `data`; the database it replaces is kept beside it as
/// `relay.sqlite.before-restore-<time>`.
pub fn restore(data: &Path, from: &Path) -> Result<Restored, BackupError> {
    if !data.is_dir() {
        return Err(BackupError(format!(
            "{} does not exist. Check --data, or create the folder to restore into.",
            data.display()
        )));
    }
    let _lock = DataLock::acquire(data).map_err(|e| match e {
        LockError::Held { pid } => BackupError(format!(
            "a relay is running on {}{}, so nothing was restored. Stop it first (Ctrl-C, SIGTERM or your service manager), then run restore again.",
            data.display(),
            LockError::process(pid)
        )),
        LockError::Io(sentence) => BackupError(sentence),
    })?;
    let summary = check_copy(from).map_err(|e| {
        BackupError(format!(
            "{} cannot be restored, so nothing was changed: {e}",
            from.display()
        ))
    })?;
    let database = data.join(DATABASE_FILE);
    let incoming = data.join(format!(".{DATABASE_FILE}.restoring"));
    remove_copy(&incoming);
    // The copy first: a full disk stops the restore before anything moves.
    let copied = std::fs::copy(from, &incoming)
        .and_then(|_| File::open(&incoming)?.sync_all())
        .map_err(|e| {
            remove_copy(&incoming);
            BackupError(folder_problem(data, &e))
        });
    copied?;
    let set_aside = if database.exists() {
        // Fold the WAL into the file, so the kept copy is one file.
        if let Ok(conn) = Connection::open(&database) {
            let _ = conn.busy_timeout(Duration::from_secs(5));
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
        }
        let aside = data.join(format!(
            "{DATABASE_FILE}.before-restore-{}",
            compact_time(partnerplan_sync::clock::unix_seconds())
        ));
        let moved = std::fs::rename(&database, &aside).and_then(|_| {
            let wal = sidecar(&database, "-wal");
            if wal.exists() {
                std::fs::rename(&wal, sidecar(&aside, "-wal"))?;
            }
            let shm = sidecar(&database, "-shm");
            if shm.exists() {
                std::fs::remove_file(shm)?;
            }
            Ok(())
        });
        if let Err(e) = moved {
            remove_copy(&incoming);
            return Err(BackupError(format!(
                "could not set {} aside ({e}), so nothing was restored. Check that this user may write to {}.",
                database.display(),
                data.display()
            )));
        }
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&incoming, &database).map_err(|e| BackupError(folder_problem(data, &e)))?;
    sync_folder(data);
    // The restored relay is not the one the schools last synced with: it
    // lacks what they sent after the backup. Schools remember, per relay
    // storage id, what they believe it holds, and would not send those
    // changes again. A new storage id (and no sync states of its own)
    // makes every school sync each document from the start, sending what
    // the relay lacks; Automerge sends only the missing changes. A school
    // sends back its partners' changes too: for a while, a school's lost
    // changes to a document are taken from its partners until it has sent
    // that document all it holds itself (every school in the register).
    let until = partnerplan_sync::clock::unix_millis() + RESTORE_WAITS_MS;
    let conn = Store::open(&database)?.into_connection();
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         DELETE FROM sync_states;
         DELETE FROM meta WHERE key = 'storage_id';
         DELETE FROM restore_waits_for;
         INSERT INTO restore_waits_for (school_id, until_ms) SELECT id, {until} FROM schools;
         COMMIT;"
    ))
    .map_err(|e| {
        BackupError(format!(
            "the backup is in place as {}, but it could not be prepared for the schools ({e}). Run restore again.",
            database.display()
        ))
    })?;
    // Which school each actor is, and whose each peer id is, never go
    // back in time: what the replaced database knew is kept, when it can
    // be read (it may be what was damaged).
    let carried = set_aside
        .as_ref()
        .is_some_and(|aside| carry_identities(&conn, aside));
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [
            RESTORE_BINDINGS,
            if carried { "carried" } else { BINDINGS_INCOMPLETE },
        ],
    )
    .map_err(|e| {
        BackupError(format!(
            "the backup is in place as {}, but it could not be prepared for the schools ({e}). Run restore again.",
            database.display()
        ))
    })?;
    drop(conn);
    let mut store = Store::open(&database)?;
    store.storage_id()?;
    store.set_meta(
        "restore.last",
        &format!(
            "{} from {}",
            iso_time(partnerplan_sync::clock::unix_seconds()),
            from.display()
        ),
    )?;
    Ok(Restored {
        database,
        set_aside,
        documents: summary.documents,
    })
}

/// Copies actor bindings and peer-id claims from the database a restore
/// replaced into the restored one, as far as it can be read; an earlier
/// binding in the restored one stays. Whether they were.
fn carry_identities(conn: &Connection, aside: &Path) -> bool {
    let carried = conn
        .execute("ATTACH DATABASE ?1 AS replaced", [aside.to_string_lossy()])
        .and_then(|_| {
            conn.execute_batch(
                "BEGIN IMMEDIATE;
                 INSERT OR IGNORE INTO actor_schools (actor, school_id, bound_at)
                     SELECT actor, school_id, bound_at FROM replaced.actor_schools;
                 INSERT INTO peer_claims (peer_id, school_id, last_seen_ms)
                     SELECT peer_id, school_id, last_seen_ms FROM replaced.peer_claims WHERE true
                     ON CONFLICT (peer_id) DO UPDATE SET school_id = excluded.school_id,
                         last_seen_ms = max(last_seen_ms, excluded.last_seen_ms);
                 COMMIT;",
            )
        });
    if let Err(error) = &carried {
        let _ = conn.execute_batch("ROLLBACK;");
        tracing::warn!(%error, "the replaced database's actor bindings could not be carried over");
    }
    let _ = conn.execute_batch("DETACH DATABASE replaced;");
    carried.is_ok()
}

/// How many scheduled backups are kept unless `--backup-keep` says.
pub const DEFAULT_KEEP: usize = 14;

/// Scheduled backups: every `every`, into `dir`, keeping the newest `keep`.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub every: Duration,
    pub keep: usize,
    pub dir: PathBuf,
}

/// One scheduled backup: a new dated file in the schedule's folder, then
/// the oldest beyond `keep` removed.
pub fn scheduled(data: &Path, schedule: &Schedule) -> Result<BackupDone, BackupError> {
    std::fs::create_dir_all(&schedule.dir)
        .map_err(|e| BackupError(folder_problem(&schedule.dir, &e)))?;
    let name = scheduled_name(partnerplan_sync::clock::unix_seconds());
    let done = backup(data, &schedule.dir.join(name), true)?;
    prune(&schedule.dir, schedule.keep.max(1));
    Ok(done)
}

/// `relay-2026-11-29T184012Z.sqlite`: sorting the names sorts the times.
pub fn scheduled_name(unix_seconds: i64) -> String {
    format!("relay-{}.sqlite", compact_time(unix_seconds))
}

fn is_scheduled_name(name: &str) -> bool {
    name.len() == "relay-2026-11-29T184012Z.sqlite".len()
        && name.starts_with("relay-")
        && name.ends_with("Z.sqlite")
}

/// Removes the oldest scheduled backups in `dir` beyond the newest `keep`.
/// Only files named as [`scheduled_name`] names them are touched.
pub fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| is_scheduled_name(n))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep);
    for name in &names[..excess] {
        if let Err(error) = std::fs::remove_file(dir.join(name)) {
            tracing::warn!(%error, file = %name, "could not remove an old backup");
        }
    }
}

/// `30s`, `30m`, `6h`, `24h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let problem = || {
        format!(
            "'{text}' is not a period this relay understands: write a whole number and a unit, like 30m, 6h or 24h (s, m, h or d)."
        )
    };
    let n: u64 = number.parse().map_err(|_| problem())?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(problem()),
    };
    if seconds == 0 {
        return Err(format!(
            "'{text}' is no time at all. Give a period such as 6h or 24h."
        ));
    }
    Ok(Duration::from_secs(seconds))
}

/// UTC as `2026-11-29T18:40:12Z`.
pub fn iso_time(unix_seconds: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix_seconds);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// UTC as `2026-11-29T184012Z`, for file names.
pub fn compact_time(unix_seconds: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix_seconds);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// Year, month, day, hour, minute, second (UTC) of a Unix time; days to
/// dates as in Howard Hinnant's `civil_from_days`.
pub(crate) fn civil(unix_seconds: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        (secs % 3600 / 60) as u32,
        (secs % 60) as u32,
    )
}

pub(crate) fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.0} KB", b as f64 / (1u64 << 10) as f64),
        b => format!("{b} bytes"),
    }
}

fn sidecar(database: &Path, suffix: &str) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_copy(path: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(sidecar(path, suffix));
    }
}

/// Makes a rename durable (best effort: not every system can).
fn sync_folder(folder: &Path) {
    if let Ok(dir) = File::open(folder) {
        let _ = dir.sync_all();
    }
}

/// A sentence for an IO error while writing into `folder`.
fn folder_problem(folder: &Path, error: &std::io::Error) -> String {
    let folder = folder.display();
    match error.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => format!(
            "the disk holding {folder} is full, so nothing was written. Free some space there, or choose a folder on another disk."
        ),
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => format!(
            "{folder} cannot be written to ({error}). Choose a folder this user may write to, or give this user permission."
        ),
        ErrorKind::NotFound => {
            format!("the folder {folder} does not exist. Create it first, or choose another.")
        }
        _ => format!(
            "could not write in {folder}: {error}. Check the folder and the disk, then try again."
        ),
    }
}

/// The same for SQLite's errors while writing the copy.
fn sqlite_problem(folder: &Path, error: &rusqlite::Error) -> BackupError {
    let code = match error {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.code),
        _ => None,
    };
    let io = match code {
        Some(ErrorCode::DiskFull) => std::io::Error::from(ErrorKind::StorageFull),
        // SQLite's own text names the temporary file, which means nothing
        // to the person reading.
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen) => {
            std::io::Error::from(ErrorKind::PermissionDenied)
        }
        _ => std::io::Error::other(error.to_string()),
    };
    BackupError(folder_problem(folder, &io))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_names() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
        // 2026-11-29 18:40:12 UTC
        let t = 1_795_977_612;
        assert_eq!(iso_time(t), "2026-11-29T18:40:12Z");
        assert_eq!(scheduled_name(t), "relay-2026-11-29T184012Z.sqlite");
        assert!(is_scheduled_name(&scheduled_name(t)));
        assert!(!is_scheduled_name("relay.sqlite"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert!(parse_duration("6 hours").is_err());
        assert!(parse_duration("0h").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn backup_checks_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut store = Store::open(data.join(DATABASE_FILE)).unwrap();
        store.set_meta("x", "y").unwrap();
        let to = dir.path().join("b.sqlite");
        let done = backup(&data, &to, false).unwrap();
        assert!(done.bytes > 0 && done.sentence().contains("b.sqlite"));
        let again = backup(&data, &to, false).unwrap_err().0;
        assert!(again.contains("--force"), "{again}");
        backup(&data, &to, true).unwrap();
        let missing = backup(&data, &dir.path().join("no/such/b.sqlite"), false)
            .unwrap_err()
            .0;
        assert!(missing.contains("does not exist"), "{missing}");
        // Nothing left behind but the backup.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn restore_keeps_the_old_database_and_refuses_what_is_not_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let database = data.join(DATABASE_FILE);
        let mut store = Store::open(&database).unwrap();
        store.set_meta("which", "old").unwrap();
        let old_id = store.storage_id().unwrap();
        let good = dir.path().join("good.sqlite");
        backup(&data, &good, false).unwrap();
        store.set_meta("which", "newer").unwrap();
        drop(store);

        // A damaged copy of our database is refused, and nothing moves.
        let mut bytes = std::fs::read(&good).unwrap();
        let page = 4096.min(bytes.len() / 2);
        for b in &mut bytes[page..] {
            *b = 0xA5;
        }
        let damaged = dir.path().join("damaged.sqlite");
        std::fs::write(&damaged, bytes).unwrap();
        let refused = restore(&data, &damaged).unwrap_err().0;
        assert!(refused.contains("nothing was changed"), "{refused}");
        let kept = Store::open(&database).unwrap();
        assert_eq!(kept.meta("which").unwrap().as_deref(), Some("newer"));
        drop(kept);

        // While the data directory is locked (a relay runs), refused.
        let lock = DataLock::acquire(&data).unwrap();
        let refused = restore(&data, &good).unwrap_err().0;
        assert!(refused.contains("Stop it first"), "{refused}");
        drop(lock);

        let restored = restore(&data, &good).unwrap();
        let aside = restored.set_aside.expect("the old database is kept");
        let mut back = Store::open(&database).unwrap();
        assert_eq!(back.meta("which").unwrap().as_deref(), Some("old"));
        assert_ne!(back.storage_id().unwrap(), old_id, "a new identity");
        let before = Store::open(&aside).unwrap();
        assert_eq!(before.meta("which").unwrap().as_deref(), Some("newer"));
    }

    #[test]
    fn a_restore_waits_for_every_school_and_keeps_the_newer_identities() {
        use partnerplan_sync::access::AccessRecord;
        use partnerplan_sync::store::Write;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let database = data.join(DATABASE_FILE);
        let mut store = Store::open(&database).unwrap();
        let conn = Store::open(&database).unwrap().into_connection();
        for (id, name, token) in [("h", "Hilltop", [1u8; 32]), ("v", "Valley", [2u8; 32])] {
            conn.execute(
                "INSERT INTO schools (id, name, token_hash, created_at) VALUES (?1, ?2, ?3, 0)",
                rusqlite::params![id, name, token.as_slice()],
            )
            .unwrap();
        }
        drop(conn);
        let bound = |actor: &[u8], school: &str| {
            Write::Access(AccessRecord::ActorBound {
                actor: actor.to_vec(),
                school: school.into(),
            })
        };
        store.write(&[bound(b"hilltop-1", "h")]).unwrap();
        let good = dir.path().join("good.sqlite");
        backup(&data, &good, false).unwrap();
        // After the backup: a new actor and a peer id, both lost with it.
        store
            .write(&[
                bound(b"valley-1", "v"),
                Write::Access(AccessRecord::PeerSeen {
                    peer_id: "valley-peer".into(),
                    school: "v".into(),
                    at_ms: partnerplan_sync::clock::unix_millis(),
                }),
            ])
            .unwrap();
        drop(store);

        restore(&data, &good).unwrap();
        let kept = Store::open(&database).unwrap().kept_access().unwrap();
        let mut actors = kept.actors.clone();
        actors.sort();
        assert_eq!(
            actors,
            vec![
                (b"hilltop-1".to_vec(), "h".to_string()),
                (b"valley-1".to_vec(), "v".to_string())
            ]
        );
        assert!(
            kept.peers
                .iter()
                .any(|(p, s, _)| p == "valley-peer" && s == "v")
        );
        let mut restored: Vec<&str> = kept.restored.iter().map(|(s, _)| s.as_str()).collect();
        restored.sort();
        assert_eq!(restored, vec!["h", "v"]);
        let now = partnerplan_sync::clock::unix_millis();
        assert!(kept.restored.iter().all(|(_, until)| *until > now));
        assert!(!kept.bindings_incomplete, "carried over");
    }

    #[test]
    fn prune_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        for t in [10, 20, 30, 40] {
            std::fs::write(dir.path().join(scheduled_name(t)), b"x").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        prune(dir.path(), 2);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "notes.txt".to_string(),
                scheduled_name(30),
                scheduled_name(40)
            ]
        );
    }
}
