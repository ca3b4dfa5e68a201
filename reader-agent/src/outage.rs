//! The outage store: the visits received while the confirmation service could not be reached
//! (資格申立書), kept on the terminal until they are caught up (docs/operations.md, "The
//! outage path").
//!
//! One JSON file per visit in `STATE-DIR/outage/` (a folder of mode 0700), each of mode 0600,
//! written to a temporary name, fsync'd, renamed and the folder fsync'd before
//! [`OutageStore::record`] returns: a visit the screen calls recorded survives a power cut.
//! A record holds the time, the declared numbers, the card's certificate hash if a card was
//! read, and its catch-up key; never a PIN (none is asked for on this path). The store is
//! bounded ([`OutageStore::capacity`]): a full store refuses a new record with
//! [`OutageError::Full`]. A record is deleted once its catch-up is answered for good.
//!
//! Opening the store checks the folder and every record: one open to others (or a symbolic
//! link, or another user's) makes [`OutageStore::open`] fail and the agent refuse to start,
//! naming the file and the `chmod` to run. It does not fix the mode itself: a record that
//! became readable by others may already have been read, which staff should know.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::desk::Numbers;

/// The folder's name in the kiosk's state folder.
pub const DIR: &str = "outage";
/// Records kept at most unless configured otherwise.
pub const DEFAULT_CAPACITY: usize = 500;

/// Why a visit could not be recorded, or the store not opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutageError {
    #[error(
        "the outage store is full ({capacity} visits wait for the service): no more visits \
         can be recorded on this terminal until they are caught up; use the paper 資格申立書"
    )]
    Full { capacity: usize },
    #[error("the declaration is not valid: {0}")]
    Invalid(String),
    #[error("{0}")]
    Io(String),
}

/// The insurance numbers and birth date the patient declared (資格申立書).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    pub insurer_number: String,
    #[serde(default)]
    pub symbol: String,
    pub number: String,
    #[serde(default)]
    pub branch: String,
    /// YYYYMMDD.
    pub birth_date: String,
}

impl Declaration {
    /// The shape checks the kiosk can make itself (the service checks the rest, such as the
    /// insurer number's check digit, at catch-up).
    pub fn check(&self) -> Result<(), OutageError> {
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let bad = |m: &str| Err(OutageError::Invalid(m.to_owned()));
        if !(self.insurer_number.len() == 6 || self.insurer_number.len() == 8)
            || !digits(&self.insurer_number)
        {
            return bad("the insurer number (保険者番号) has 6 or 8 digits");
        }
        if self.number.is_empty() || self.number.chars().count() > 38 {
            return bad("the number (番号) is required, at most 38 characters");
        }
        if self.symbol.chars().count() > 38 {
            return bad("the symbol (記号) has at most 38 characters");
        }
        if !(self.branch.is_empty() || (self.branch.len() == 2 && digits(&self.branch))) {
            return bad("the branch (枝番) has 2 digits, or is empty");
        }
        let date_ok = self.birth_date.len() == 8
            && digits(&self.birth_date)
            && time::Date::parse(
                &self.birth_date,
                time::macros::format_description!("[year][month][day]"),
            )
            .is_ok();
        if !date_ok {
            return bad("the birth date is YYYYMMDD");
        }
        let all = [
            &self.insurer_number,
            &self.symbol,
            &self.number,
            &self.branch,
        ];
        if all.iter().any(|s| s.chars().any(char::is_control)) {
            return bad("control characters are not allowed");
        }
        Ok(())
    }

    pub fn numbers(&self) -> Numbers {
        Numbers {
            insurer_number: self.insurer_number.clone(),
            symbol: self.symbol.clone(),
            number: self.number.clone(),
            branch: self.branch.clone(),
            birth_date: self.birth_date.clone(),
            as_of_date: String::new(),
            ..Numbers::default()
        }
    }
}

/// One visit received during the outage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutageVisit {
    /// Random, 32 hex digits: the file's name and the catch-up's idempotency key.
    pub id: String,
    /// When the visit was received (Unix seconds, the terminal's clock).
    pub received_at_unix: i64,
    pub declaration: Declaration,
    /// SHA-256 of the card's certificate, hex, if a card was read. Only a hint for staff:
    /// the catch-up never presents it as a card.
    pub certificate_sha256: Option<String>,
    /// `kiosk`, or `staff:<id>` for a visit staff entered.
    pub entered_by: String,
}

impl OutageVisit {
    /// The idempotency key the catch-up sends.
    pub fn idempotency_key(&self) -> String {
        format!("outage-{}", self.id)
    }
}

/// The records on disk.
#[derive(Debug)]
pub struct OutageStore {
    dir: PathBuf,
    capacity: usize,
}

/// A record's id: 32 hex digits (it names files).
fn check_id(id: &str) -> Result<(), OutageError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(OutageError::Invalid(
            "the record's id is not 32 hex digits".into(),
        ))
    }
}

fn io(path: &Path, what: &str, e: std::io::Error) -> OutageError {
    OutageError::Io(format!("cannot {what} {}: {e}", path.display()))
}

impl OutageStore {
    /// Opens (creating) `state_dir/outage`, refusing a folder or record open to others.
    pub fn open(state_dir: &Path, capacity: usize) -> Result<Self, OutageError> {
        use std::os::unix::fs::DirBuilderExt as _;
        let dir = state_dir.join(DIR);
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| io(&dir, "create", e))?;
        }
        let refuse = |m: String| {
            OutageError::Io(format!(
                "the outage store holds patients' insurance numbers and must be private: {m}; \
                 the kiosk does not start until this is fixed"
            ))
        };
        crate::kiosk::web::check_private(&dir).map_err(refuse)?;
        let store = OutageStore { dir, capacity };
        for path in store
            .files()?
            .into_iter()
            .chain(store.disagreement_files()?)
        {
            crate::kiosk::web::check_private(&path).map_err(refuse)?;
        }
        // A temporary file left by a crash mid-write was never reported recorded.
        for entry in std::fs::read_dir(&store.dir).map_err(|e| io(&store.dir, "read", e))? {
            let entry = entry.map_err(|e| io(&store.dir, "read", e))?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(store)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, id: &str) -> PathBuf {
        self.dir.join(format!("visit-{id}.json"))
    }

    fn files(&self) -> Result<Vec<PathBuf>, OutageError> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| io(&self.dir, "read", e))? {
            let entry = entry.map_err(|e| io(&self.dir, "read", e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("visit-") && name.ends_with(".json") {
                files.push(entry.path());
            }
        }
        files.sort();
        Ok(files)
    }

    /// The visits waiting, oldest first.
    pub fn list(&self) -> Result<Vec<OutageVisit>, OutageError> {
        let mut visits = Vec::new();
        for path in self.files()? {
            let bytes = std::fs::read(&path).map_err(|e| io(&path, "read", e))?;
            let visit: OutageVisit = serde_json::from_slice(&bytes).map_err(|e| {
                OutageError::Io(format!("{} is not an outage record: {e}", path.display()))
            })?;
            visits.push(visit);
        }
        visits.sort_by(|a, b| (a.received_at_unix, &a.id).cmp(&(b.received_at_unix, &b.id)));
        Ok(visits)
    }

    fn disagreement_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("disagreement-{id}.json"))
    }

    fn disagreement_files(&self) -> Result<Vec<PathBuf>, OutageError> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| io(&self.dir, "read", e))? {
            let entry = entry.map_err(|e| io(&self.dir, "read", e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("disagreement-") && name.ends_with(".json") {
                files.push(entry.path());
            }
        }
        files.sort();
        Ok(files)
    }

    /// Keeps a caught-up visit's disagreement (`id` is the visit's) until staff acknowledge
    /// it, written as durably and privately as a record. Written again for the same visit, it
    /// replaces the first (a catch-up resumed after a crash).
    pub fn record_disagreement(
        &self,
        id: &str,
        disagreement: &serde_json::Value,
    ) -> Result<(), OutageError> {
        check_id(id)?;
        let bytes = serde_json::to_vec_pretty(disagreement)
            .map_err(|e| OutageError::Io(format!("cannot encode the disagreement: {e}")))?;
        self.write_private(&format!(".tmp-d-{id}"), &self.disagreement_path(id), &bytes)
    }

    /// The disagreements staff have not acknowledged yet, oldest visit first.
    pub fn disagreements(&self) -> Result<Vec<serde_json::Value>, OutageError> {
        let mut all = Vec::new();
        for path in self.disagreement_files()? {
            let bytes = std::fs::read(&path).map_err(|e| io(&path, "read", e))?;
            let d: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                OutageError::Io(format!("{} is not a disagreement: {e}", path.display()))
            })?;
            all.push(d);
        }
        all.sort_by_key(|d| {
            (
                d["visit"]["received_at_unix"].as_i64().unwrap_or(0),
                d["visit"]["id"].as_str().unwrap_or("").to_owned(),
            )
        });
        Ok(all)
    }

    /// Staff acknowledged a disagreement (billing has it): deleted. `false` when there is
    /// none for that visit.
    pub fn acknowledge(&self, id: &str) -> Result<bool, OutageError> {
        check_id(id)?;
        let path = self.disagreement_path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                self.sync_dir().map_err(|e| io(&self.dir, "sync", e))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&path, "delete", e)),
        }
    }

    /// Records a visit durably: when this returns `Ok`, the file and its name are on disk.
    pub fn record(&self, visit: &OutageVisit) -> Result<(), OutageError> {
        visit.declaration.check()?;
        check_id(&visit.id)?;
        if self.files()?.len() >= self.capacity {
            return Err(OutageError::Full {
                capacity: self.capacity,
            });
        }
        let bytes = serde_json::to_vec_pretty(visit)
            .map_err(|e| OutageError::Io(format!("cannot encode the record: {e}")))?;
        self.write_private(
            &format!(".tmp-{}", visit.id),
            &self.path_of(&visit.id),
            &bytes,
        )
    }

    /// Writes `bytes` to `path` through the temporary `tmp_name`: mode 0600, fsync'd,
    /// renamed, the folder fsync'd.
    fn write_private(&self, tmp_name: &str, path: &Path, bytes: &[u8]) -> Result<(), OutageError> {
        use std::io::Write as _;
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let tmp = self.dir.join(tmp_name);
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io(&tmp, "create", e))?;
        let written = file
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .and_then(|()| file.write_all(bytes))
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&tmp, path))
            .and_then(|()| self.sync_dir());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(path, "write", e));
        }
        Ok(())
    }

    /// Deletes a caught-up visit (and fsyncs the folder).
    pub fn remove(&self, id: &str) -> Result<(), OutageError> {
        let path = self.path_of(id);
        match std::fs::remove_file(&path) {
            Ok(()) => self.sync_dir().map_err(|e| io(&self.dir, "sync", e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path, "delete", e)),
        }
    }

    fn sync_dir(&self) -> std::io::Result<()> {
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn declaration() -> Declaration {
        Declaration {
            insurer_number: "06139993".into(),
            symbol: "1".into(),
            number: "2".into(),
            branch: "01".into(),
            birth_date: "19800101".into(),
        }
    }

    fn visit(n: u8) -> OutageVisit {
        OutageVisit {
            id: format!("{n:032x}"),
            received_at_unix: 1_700_000_000 + i64::from(n),
            declaration: declaration(),
            certificate_sha256: None,
            entered_by: "kiosk".into(),
        }
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn records_are_private_durable_listed_and_deleted() {
        let state = tempfile::tempdir().unwrap();
        let store = OutageStore::open(state.path(), 10).unwrap();
        assert_eq!(mode(store.dir()), 0o700);
        store.record(&visit(2)).unwrap();
        store.record(&visit(1)).unwrap();
        let file = store.path_of(&visit(1).id);
        assert_eq!(mode(&file), 0o600);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.to_lowercase().contains("pin"), "{text}");
        assert_eq!(store.list().unwrap(), vec![visit(1), visit(2)]);
        // A new store over the same folder sees them (what a restart sees).
        let again = OutageStore::open(state.path(), 10).unwrap();
        assert_eq!(again.list().unwrap().len(), 2);
        again.remove(&visit(1).id).unwrap();
        again.remove(&visit(1).id).unwrap();
        assert_eq!(again.list().unwrap(), vec![visit(2)]);
        assert!(!file.exists());
    }

    #[test]
    fn disagreements_are_private_survive_a_restart_and_go_when_acknowledged() {
        let state = tempfile::tempdir().unwrap();
        let store = OutageStore::open(state.path(), 1).unwrap();
        let (later, earlier) = (visit(2), visit(1));
        for v in [&later, &earlier] {
            let d = serde_json::json!({"visit": v, "reason": "無効", "result_code": "X"});
            store.record_disagreement(&v.id, &d).unwrap();
        }
        let file = store.disagreement_path(&earlier.id);
        assert_eq!(mode(&file), 0o600);
        // Not records: they take no room from the outage store's capacity.
        store.record(&visit(3)).unwrap();
        // What a restart sees: both, oldest visit first.
        let again = OutageStore::open(state.path(), 1).unwrap();
        let ids: Vec<String> = again
            .disagreements()
            .unwrap()
            .iter()
            .map(|d| d["visit"]["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, [earlier.id.clone(), later.id.clone()]);
        assert!(again.acknowledge(&earlier.id).unwrap());
        assert!(!again.acknowledge(&earlier.id).unwrap(), "already gone");
        assert!(!file.exists());
        assert_eq!(again.disagreements().unwrap().len(), 1);
        // An id that is not one cannot name a file elsewhere.
        assert!(matches!(
            again.acknowledge("../../etc/passwd"),
            Err(OutageError::Invalid(_))
        ));
        // Open to others: the kiosk refuses to start, as for a record.
        let left = again.disagreement_path(&later.id);
        std::fs::set_permissions(&left, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = OutageStore::open(state.path(), 1).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_full_store_refuses_clearly() {
        let state = tempfile::tempdir().unwrap();
        let store = OutageStore::open(state.path(), 2).unwrap();
        store.record(&visit(1)).unwrap();
        store.record(&visit(2)).unwrap();
        let err = store.record(&visit(3)).unwrap_err();
        assert_eq!(err, OutageError::Full { capacity: 2 });
        assert!(err.to_string().contains("full"), "{err}");
        assert_eq!(store.list().unwrap().len(), 2);
    }

    #[test]
    fn a_record_readable_by_others_stops_the_store_from_opening() {
        let state = tempfile::tempdir().unwrap();
        let store = OutageStore::open(state.path(), 10).unwrap();
        store.record(&visit(1)).unwrap();
        let file = store.path_of(&visit(1).id);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = OutageStore::open(state.path(), 10).unwrap_err().to_string();
        assert!(err.contains("open to others (mode 644)"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        assert!(err.contains("does not start"), "{err}");
        // The mode is left as found: staff decide.
        assert_eq!(mode(&file), 0o644);
    }

    #[test]
    fn declarations_are_checked_before_they_are_recorded() {
        let state = tempfile::tempdir().unwrap();
        let store = OutageStore::open(state.path(), 10).unwrap();
        for bad in [
            Declaration {
                insurer_number: "123".into(),
                ..declaration()
            },
            Declaration {
                number: String::new(),
                ..declaration()
            },
            Declaration {
                branch: "1".into(),
                ..declaration()
            },
            Declaration {
                birth_date: "19801301".into(),
                ..declaration()
            },
        ] {
            let mut v = visit(1);
            v.declaration = bad;
            assert!(matches!(store.record(&v), Err(OutageError::Invalid(_))));
        }
        assert!(store.list().unwrap().is_empty());
    }
}
