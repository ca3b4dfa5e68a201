//! The terminal's folders on disk: `req/` (requests in), `res/` (answers out), `face/`
//! (confirmations done at the reader), `done/` (answered requests) and `.oqs/` (the agent's
//! journal), with the durable steps that make an answer appear exactly once.
//!
//! An answer is made visible in three durable steps:
//! 1. written to `res/.<answer>.tmp` and fsync'd;
//! 2. a journal entry `.oqs/answered/<key>` (the request's key: SHA-256 of its name and bytes)
//!    created and the journal folder fsync'd;
//! 3. renamed to `res/<answer>` and `res/` fsync'd; then the request is moved to `done/`
//!    (both folders fsync'd) and the journal entry removed.
//!
//! After a crash, [`Folders::recover`] finishes what the journal says was answered (renaming a
//! complete temporary file, or only moving the request when the answer is already there or
//! was already taken by the reception software) and answers nothing twice; a request with no
//! journal entry was never answered visibly and is answered again (the service recognises the
//! key and writes no second audit record).

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ring::digest;

/// The folders of one terminal under its root.
#[derive(Debug, Clone)]
pub struct Folders {
    pub root: PathBuf,
    pub req: PathBuf,
    pub res: PathBuf,
    pub face: PathBuf,
    pub done: PathBuf,
    journal: PathBuf,
    bulk: PathBuf,
}

/// What recovery found for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// Its answer was made visible before the crash: only the request was moved.
    Finished,
    /// Not answered visibly: answer it.
    Unanswered,
}

impl Folders {
    /// Creates the folders that are missing.
    pub fn open(root: &Path) -> std::io::Result<Folders> {
        fs::create_dir_all(root)?;
        // Absolute: inotify reports absolute paths, and its events are matched against these
        // (a relative `--dir` otherwise sees no request renamed in after start).
        let root = &fs::canonicalize(root)?;
        let f = Folders {
            root: root.to_owned(),
            req: root.join("req"),
            res: root.join("res"),
            face: root.join("face"),
            done: root.join("done"),
            journal: root.join(".oqs").join("answered"),
            bulk: root.join(".oqs").join("bulk"),
        };
        for d in [&f.req, &f.res, &f.face, &f.done, &f.journal, &f.bulk] {
            fs::create_dir_all(d)?;
        }
        Ok(f)
    }

    /// The request's idempotency key: SHA-256 of its file name and bytes, hex.
    pub fn key(name: &str, bytes: &[u8]) -> String {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&(name.len() as u64).to_be_bytes());
        ctx.update(name.as_bytes());
        ctx.update(bytes);
        hex::encode(ctx.finish().as_ref())
    }

    fn temp_of(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!(".{name}.tmp"))
    }

    /// Writes `bytes` as `dir/name` atomically: temp name, fsync, rename, fsync the folder.
    pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let temp = Self::temp_of(dir, name);
        write_synced(&temp, bytes)?;
        fs::rename(&temp, dir.join(name))?;
        sync_dir(dir)
    }

    /// Answers a request durably (the three steps of the module's doc) and moves it to
    /// `done/`.
    pub fn answer(
        &self,
        request_name: &str,
        key: &str,
        answer_name: &str,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        let temp = Self::temp_of(&self.res, answer_name);
        write_synced(&temp, bytes)?;
        // The journal entry names the answer: recovery needs it without reading the request.
        write_synced(&self.journal.join(key), answer_name.as_bytes())?;
        sync_dir(&self.journal)?;
        fs::rename(&temp, self.res.join(answer_name))?;
        sync_dir(&self.res)?;
        self.retire(request_name, key)
    }

    /// Moves an answered request to `done/` (a name already there gets a numbered suffix)
    /// and drops its journal entry.
    fn retire(&self, request_name: &str, key: &str) -> std::io::Result<()> {
        let mut target = self.done.join(request_name);
        let mut n = 1;
        while target.exists() {
            target = self.done.join(format!("{request_name}.{n}"));
            n += 1;
        }
        match fs::rename(self.req.join(request_name), &target) {
            Ok(()) => {}
            // Taken away meanwhile: nothing to move.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        sync_dir(&self.done)?;
        sync_dir(&self.req)?;
        match fs::remove_file(self.journal.join(key)) {
            Ok(()) => sync_dir(&self.journal),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Before answering a request found in `req/`: finishes an answer a crash interrupted.
    pub fn recover(&self, request_name: &str, key: &str) -> std::io::Result<Recovered> {
        let entry = self.journal.join(key);
        let answer_name = match fs::read_to_string(&entry) {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Recovered::Unanswered),
            Err(e) => return Err(e),
        };
        if answer_name.is_empty() || answer_name.contains('/') {
            // Not ours (or damaged): treat as never answered.
            let _ = fs::remove_file(&entry);
            return Ok(Recovered::Unanswered);
        }
        let temp = Self::temp_of(&self.res, &answer_name);
        if temp.exists() {
            // Step 2 happened, so the temporary file was complete and synced.
            fs::rename(&temp, self.res.join(&answer_name))?;
            sync_dir(&self.res)?;
        }
        // Either now visible, or already visible and perhaps taken by the reception software.
        self.retire(request_name, key)?;
        Ok(Recovered::Finished)
    }

    /// Removes temporary answer files no journal entry vouches for (a crash during step 1).
    pub fn sweep_temporaries(&self) -> std::io::Result<usize> {
        let mut vouched = std::collections::HashSet::new();
        for e in fs::read_dir(&self.journal)? {
            if let Ok(a) = fs::read_to_string(e?.path()) {
                vouched.insert(format!(".{a}.tmp"));
            }
        }
        let mut removed = 0;
        for dir in [&self.res, &self.face] {
            for e in fs::read_dir(dir)? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && name.ends_with(".tmp") && !vouched.contains(&name) {
                    fs::remove_file(e.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Remembers what a bulk submission's queries carried that the service does not keep
    /// (ArbitraryIdentifier and the limit-information flag), for the fetch's echo.
    pub fn save_bulk(
        &self,
        reception_number: &str,
        lines: &[(bool, String)],
    ) -> std::io::Result<()> {
        if !safe_name(reception_number) {
            return Ok(());
        }
        let mut text = String::new();
        for (flag, id) in lines {
            text.push(if *flag { '1' } else { '0' });
            text.push('\t');
            text.push_str(&id.replace(['\n', '\r', '\t'], " "));
            text.push('\n');
        }
        Self::write_atomic(&self.bulk, reception_number, text.as_bytes())
    }

    /// What [`save_bulk`](Self::save_bulk) kept, if anything.
    pub fn load_bulk(&self, reception_number: &str) -> Vec<(bool, String)> {
        if !safe_name(reception_number) {
            return Vec::new();
        }
        fs::read_to_string(self.bulk.join(reception_number))
            .map(|t| {
                t.lines()
                    .map(|l| {
                        let (flag, id) = l.split_once('\t').unwrap_or((l, ""));
                        (flag == "1", id.to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// fsync of a folder, so a rename or a new name in it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_visible_and_the_request_retired() {
        let dir = tempfile::tempdir().unwrap();
        let f = Folders::open(dir.path()).unwrap();
        fs::write(f.req.join("OQSsiquc01req_1.xml"), b"<x/>").unwrap();
        let key = Folders::key("OQSsiquc01req_1.xml", b"<x/>");
        f.answer(
            "OQSsiquc01req_1.xml",
            &key,
            "OQSsiquc01res_1.xml",
            b"answer",
        )
        .unwrap();
        assert_eq!(
            fs::read(f.res.join("OQSsiquc01res_1.xml")).unwrap(),
            b"answer"
        );
        assert!(f.done.join("OQSsiquc01req_1.xml").exists());
        assert!(!f.req.join("OQSsiquc01req_1.xml").exists());
        assert_eq!(fs::read_dir(&f.journal).unwrap().count(), 0);
        assert_eq!(fs::read_dir(&f.res).unwrap().count(), 1);
    }

    /// `--dir oqs-demo/oqs` as the demo passes it: the folders are absolute, like the paths
    /// inotify reports, or no request renamed in after start would ever be seen.
    #[test]
    fn a_relative_root_is_made_absolute() {
        let cwd = std::env::current_dir().unwrap();
        let dir = tempfile::Builder::new()
            .prefix(".oqs-relative-")
            .tempdir_in(&cwd)
            .unwrap();
        let relative = dir.path().strip_prefix(&cwd).unwrap();
        assert!(relative.is_relative());
        let f = Folders::open(relative).unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        assert_eq!(f.req, root.join("req"));
        assert!(f.res.is_absolute() && f.face.is_absolute() && f.journal.is_absolute());
    }

    #[test]
    fn recovery_finishes_an_interrupted_answer_and_never_repeats_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = Folders::open(dir.path()).unwrap();
        let name = "OQSsiquc01req_2.xml";
        let key = Folders::key(name, b"<y/>");
        fs::write(f.req.join(name), b"<y/>").unwrap();
        // Nothing journaled: unanswered, and a stray temporary is swept.
        fs::write(f.res.join(".OQSsiquc01res_2.xml.tmp"), b"half").unwrap();
        assert_eq!(f.recover(name, &key).unwrap(), Recovered::Unanswered);
        assert_eq!(f.sweep_temporaries().unwrap(), 1);
        // Crash after step 2: the temporary is complete; recovery renames it.
        fs::write(f.res.join(".OQSsiquc01res_2.xml.tmp"), b"whole").unwrap();
        fs::write(f.journal.join(&key), "OQSsiquc01res_2.xml").unwrap();
        assert_eq!(f.sweep_temporaries().unwrap(), 0);
        assert_eq!(f.recover(name, &key).unwrap(), Recovered::Finished);
        assert_eq!(
            fs::read(f.res.join("OQSsiquc01res_2.xml")).unwrap(),
            b"whole"
        );
        assert!(f.done.join(name).exists());
        // Crash after step 3 with the answer already taken away: only the request moves.
        fs::write(f.req.join(name), b"<y/>").unwrap();
        fs::remove_file(f.res.join("OQSsiquc01res_2.xml")).unwrap();
        fs::write(f.journal.join(&key), "OQSsiquc01res_2.xml").unwrap();
        assert_eq!(f.recover(name, &key).unwrap(), Recovered::Finished);
        assert!(!f.res.join("OQSsiquc01res_2.xml").exists());
        assert!(f.done.join(format!("{name}.1")).exists());
    }

    #[test]
    fn bulk_echoes_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let f = Folders::open(dir.path()).unwrap();
        f.save_bulk("R-1", &[(true, "a".into()), (false, "b\tc".into())])
            .unwrap();
        assert_eq!(
            f.load_bulk("R-1"),
            vec![(true, "a".into()), (false, "b c".into())]
        );
        assert!(f.load_bulk("../x").is_empty());
    }
}
