//! Who may use the staff's view: staff accounts (an id and an argon2id password hash each, in
//! the state folder, set by `reader-agent staff add`), log-ins with an idle time-out, and a
//! brake on guessing.
//!
//! - **Accounts** live in `staff-accounts.json` (mode 0600 in a 0700 folder, the kiosk
//!   user's; the kiosk refuses anything else). The kiosk re-reads it when it changes, so a
//!   removed account's log-ins end at their next request (or the next sweep).
//! - **A log-in** is two random 256-bit secrets together: a session id in an `HttpOnly;
//!   SameSite=Strict` cookie, and a secret the page keeps and sends with every request (a
//!   cookie of 127.0.0.1 reaches every port of it, so it cannot be enough). It ends at
//!   log-out, after the idle time-out, or when the account is removed; whoever ends it learns
//!   whose it was, so that member's visual check goes off.
//! - **A wrong log-in** is answered the same whether the id or the password was wrong (an
//!   unknown id is checked against a dummy hash, so it takes as long). Each log-in counts
//!   against its id *before* its password is checked, and the [`MAX_FAILURES`]th in a row
//!   locks the id for [`LOCKOUT`]: log-ins sent at once get no more guesses. At most two
//!   passwords are checked at a time (argon2id takes 19 MiB each), 16 more may wait.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::web;

/// The accounts file in the state folder.
pub const ACCOUNTS_FILE: &str = "staff-accounts.json";
/// Wrong log-ins in a row for one id before it is refused for a while.
pub const MAX_FAILURES: u32 = 5;
/// How long an id is refused after [`MAX_FAILURES`].
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Shortest and longest password.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;

/// A staff id: 1–32 characters of `A-Z a-z 0-9 . _ -`.
pub fn check_staff_id(id: &str) -> Result<(), String> {
    if (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Ok(())
    } else {
        Err("a staff id is 1 to 32 characters of A-Z, a-z, 0-9, '.', '_' and '-'".into())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    version: u32,
    /// Staff id → PHC string of its argon2id hash.
    staff: BTreeMap<String, String>,
}

/// The accounts file of a state folder.
#[derive(Debug, Clone)]
pub struct Accounts {
    path: PathBuf,
}

impl Accounts {
    pub fn in_dir(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(ACCOUNTS_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<AccountsFile, String> {
        if !self.path.exists() {
            return Ok(AccountsFile {
                version: 1,
                staff: BTreeMap::new(),
            });
        }
        if let Some(dir) = self.path.parent() {
            web::check_private(dir)?;
        }
        web::check_private(&self.path)?;
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let file: AccountsFile = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a staff accounts file: {e}", self.path.display()))?;
        if file.version != 1 {
            return Err(format!(
                "{} has version {}; this reader-agent knows version 1",
                self.path.display(),
                file.version
            ));
        }
        Ok(file)
    }

    fn write(&self, file: &AccountsFile) -> Result<(), String> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let text = serde_json::to_vec_pretty(file).map_err(|e| e.to_string())?;
        web::write_private(dir, ACCOUNTS_FILE, &text).map(|_| ())
    }

    /// The staff ids, sorted.
    pub fn list(&self) -> Result<Vec<String>, String> {
        Ok(self.read()?.staff.into_keys().collect())
    }

    /// Adds `id` or sets its password. Returns whether the id is new.
    pub fn set_password(&self, id: &str, password: &str) -> Result<bool, String> {
        check_staff_id(id)?;
        if !PASSWORD_LEN.contains(&password.chars().count()) {
            return Err(format!(
                "a password is {} to {} characters",
                PASSWORD_LEN.start(),
                PASSWORD_LEN.end()
            ));
        }
        let hash = hash_password(password)?;
        let mut file = self.read()?;
        let new = file.staff.insert(id.to_owned(), hash).is_none();
        self.write(&file)?;
        Ok(new)
    }

    /// Removes `id`. Returns whether it was there.
    pub fn remove(&self, id: &str) -> Result<bool, String> {
        let mut file = self.read()?;
        let was = file.staff.remove(id).is_some();
        if was {
            self.write(&file)?;
        }
        Ok(was)
    }

    /// The modification time, to notice changes.
    fn stamp(&self) -> Option<SystemTime> {
        std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
    }
}

/// An argon2id hash (the crate's default parameters: 19 MiB, 2 passes) as a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut salt)
        .map_err(|_| "the system's random source failed".to_owned())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

fn password_matches(phc: &str, password: &[u8]) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password, &h).is_ok())
}

/// Why a log-in was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// The id or the password was wrong (never says which).
    Wrong,
    /// Too many wrong log-ins for this id: wait.
    Throttled { seconds: u64 },
    /// Too many log-ins being checked at once: try again shortly.
    Busy,
    /// The accounts file cannot be used.
    Unavailable(String),
}

/// A new log-in: the session id (for the cookie) and the session's secret (for the page,
/// which sends it with every request). Either alone is worthless.
#[derive(Debug, Clone)]
pub struct NewLogin {
    pub session_id: String,
    pub secret: String,
}

/// A logged-in staff member, as the handlers see them.
#[derive(Debug, Clone)]
pub struct StaffMember {
    pub staff_id: String,
    /// Becomes `false` (or closes) when the log-in ends: event streams stop with it.
    pub alive: watch::Receiver<bool>,
}

/// Why a request is not a live log-in's. `ended` names the staff member whose log-in ended
/// just now (idle, or the account removed) and who has no other log-in left: their visual
/// check must go off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLoggedIn {
    pub ended: Option<String>,
}

struct Login {
    staff_id: String,
    /// The secret the page sends with every request.
    secret: String,
    last_seen: Instant,
    alive: watch::Sender<bool>,
}

struct Failures {
    /// Log-ins counted against this id, including those still being checked.
    count: u32,
    locked_until: Option<Instant>,
}

struct Inner {
    logins: HashMap<String, Login>,
    failures: HashMap<String, Failures>,
    /// The accounts as last read, and the file's time then.
    known: Option<(Option<SystemTime>, BTreeMap<String, String>)>,
}

/// Password checks at once (argon2id takes 19 MiB and tens of milliseconds each).
const CHECKS_AT_ONCE: usize = 2;
/// Log-ins that may wait for a check; more are refused as busy.
const CHECKS_WAITING: usize = 16;

/// The staff listener's log-ins.
#[derive(Clone)]
pub struct StaffLogins {
    accounts: Accounts,
    idle: Duration,
    dummy_hash: Arc<String>,
    inner: Arc<Mutex<Inner>>,
    checks: Arc<tokio::sync::Semaphore>,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    rng: SystemRandom,
}

impl std::fmt::Debug for StaffLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffLogins")
            .field("accounts", &self.accounts.path)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

/// A staff id as it may appear in the log: itself if well-formed, otherwise not at all.
fn loggable(staff_id: &str) -> &str {
    if check_staff_id(staff_id).is_ok() {
        staff_id
    } else {
        "(malformed id)"
    }
}

impl StaffLogins {
    pub fn new(accounts: Accounts, idle: Duration) -> Result<Self, String> {
        // Checked now, so a bad file stops the kiosk at its start rather than at a log-in.
        accounts.read()?;
        let rng = SystemRandom::new();
        let dummy = web::random_hex(&rng, 16)?;
        Ok(Self {
            accounts,
            idle,
            dummy_hash: Arc::new(hash_password(&dummy)?),
            inner: Arc::new(Mutex::new(Inner {
                logins: HashMap::new(),
                failures: HashMap::new(),
                known: None,
            })),
            checks: Arc::new(tokio::sync::Semaphore::new(CHECKS_AT_ONCE)),
            waiting: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            rng,
        })
    }

    pub fn idle_timeout(&self) -> Duration {
        self.idle
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The accounts, re-read when the file changed.
    fn accounts(&self) -> Result<BTreeMap<String, String>, String> {
        let stamp = self.accounts.stamp();
        if let Some((seen, staff)) = &self.lock().known {
            if *seen == stamp {
                return Ok(staff.clone());
            }
        }
        let staff = self.accounts.read()?.staff;
        self.lock().known = Some((stamp, staff.clone()));
        Ok(staff)
    }

    /// Counts a log-in for `staff_id` before its password is checked, so that log-ins sent
    /// at once cannot all pass the lock: the fifth in a row locks the id.
    fn reserve_attempt(&self, staff_id: &str) -> Result<(), LoginError> {
        let now = Instant::now();
        let mut inner = self.lock();
        // Bounded: a flood of invented ids cannot grow the map for ever.
        if inner.failures.len() > 10_000 {
            inner
                .failures
                .retain(|_, f| f.locked_until.is_some_and(|u| u > now));
        }
        let f = inner
            .failures
            .entry(staff_id.to_owned())
            .or_insert(Failures {
                count: 0,
                locked_until: None,
            });
        match f.locked_until {
            Some(until) if until > now => {
                return Err(LoginError::Throttled {
                    seconds: (until - now).as_secs().max(1),
                })
            }
            Some(_) => {
                f.count = 0;
                f.locked_until = None;
            }
            None => {}
        }
        f.count += 1;
        if f.count >= MAX_FAILURES {
            f.locked_until = Some(now + LOCKOUT);
        }
        Ok(())
    }

    /// Checks a log-in; on success returns the new session.
    pub async fn login(
        &self,
        staff_id: &str,
        password: Zeroizing<String>,
    ) -> Result<NewLogin, LoginError> {
        use std::sync::atomic::Ordering;
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= CHECKS_WAITING {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("staff log-in refused: too many log-ins at once");
            return Err(LoginError::Busy);
        }
        let permit = self.checks.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let Ok(permit) = permit else {
            return Err(LoginError::Busy);
        };
        if let Err(e) = self.reserve_attempt(staff_id) {
            tracing::warn!(
                staff_id = loggable(staff_id),
                "staff log-in refused: locked"
            );
            return Err(e);
        }
        let accounts = self.accounts().map_err(LoginError::Unavailable)?;
        // An unknown id is checked against a dummy hash: same answer, same time.
        let (phc, known) = match accounts.get(staff_id) {
            Some(h) => (h.clone(), true),
            None => (self.dummy_hash.as_ref().clone(), false),
        };
        let matches = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            password_matches(&phc, password.as_bytes()) && known
        })
        .await
        .unwrap_or(false);
        if !matches {
            tracing::warn!(
                staff_id = loggable(staff_id),
                "staff log-in refused: wrong id or password"
            );
            return Err(LoginError::Wrong);
        }
        let session_id = web::random_hex(&self.rng, 32).map_err(LoginError::Unavailable)?;
        let secret = web::random_hex(&self.rng, 32).map_err(LoginError::Unavailable)?;
        let (alive, _) = watch::channel(true);
        let mut inner = self.lock();
        inner.failures.remove(staff_id);
        inner.logins.insert(
            session_id.clone(),
            Login {
                staff_id: staff_id.to_owned(),
                secret: secret.clone(),
                last_seen: Instant::now(),
                alive,
            },
        );
        tracing::info!(staff_id, "staff logged in");
        Ok(NewLogin { session_id, secret })
    }

    /// The staff member of a live session whose secret is `secret` (and the session is
    /// touched); otherwise why not.
    pub fn session(&self, session_id: &str, secret: &str) -> Result<StaffMember, NotLoggedIn> {
        let accounts = self.accounts().ok();
        let now = Instant::now();
        let mut inner = self.lock();
        let none = NotLoggedIn { ended: None };
        let login = inner.logins.get_mut(session_id).ok_or(none.clone())?;
        if !web::secrets_equal(&login.secret, secret) {
            return Err(none);
        }
        let expired = now.duration_since(login.last_seen) >= self.idle;
        let removed = accounts.is_none_or(|a| !a.contains_key(&login.staff_id));
        if expired || removed {
            let gone = inner.logins.remove(session_id).ok_or(none)?;
            let _ = gone.alive.send(false);
            tracing::info!(
                staff_id = gone.staff_id,
                "staff log-in ended (idle or removed)"
            );
            let others = inner.logins.values().any(|l| l.staff_id == gone.staff_id);
            return Err(NotLoggedIn {
                ended: (!others).then_some(gone.staff_id),
            });
        }
        login.last_seen = now;
        Ok(StaffMember {
            staff_id: login.staff_id.clone(),
            alive: login.alive.subscribe(),
        })
    }

    /// Ends a session (its secret must match). Returns its staff id if that member has no
    /// other log-in left.
    pub fn logout(&self, session_id: &str, secret: &str) -> Option<String> {
        let mut inner = self.lock();
        let matches = inner
            .logins
            .get(session_id)
            .is_some_and(|l| web::secrets_equal(&l.secret, secret));
        if !matches {
            return None;
        }
        let gone = inner.logins.remove(session_id)?;
        let _ = gone.alive.send(false);
        tracing::info!(staff_id = gone.staff_id, "staff logged out");
        let others = inner.logins.values().any(|l| l.staff_id == gone.staff_id);
        (!others).then_some(gone.staff_id)
    }

    /// Ends the sessions idle for the time-out and those whose account was removed; returns
    /// the staff ids that no longer have any session.
    pub fn sweep(&self) -> Vec<String> {
        let accounts = self.accounts().ok();
        let now = Instant::now();
        let mut inner = self.lock();
        let mut ended = Vec::new();
        inner.logins.retain(|_, l| {
            let removed = accounts
                .as_ref()
                .is_none_or(|a| !a.contains_key(&l.staff_id));
            let keep = now.duration_since(l.last_seen) < self.idle && !removed;
            if !keep {
                let _ = l.alive.send(false);
                ended.push(l.staff_id.clone());
            }
            keep
        });
        ended.retain(|id| !inner.logins.values().any(|l| &l.staff_id == id));
        ended.dedup();
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logins(idle: Duration) -> (tempfile::TempDir, Accounts, StaffLogins) {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let accounts = Accounts::in_dir(dir.path());
        accounts.set_password("S001", "correct horse").unwrap();
        let logins = StaffLogins::new(accounts.clone(), idle).unwrap();
        (dir, accounts, logins)
    }

    fn pw(s: &str) -> Zeroizing<String> {
        Zeroizing::new(s.to_owned())
    }

    fn wrong(r: Result<NewLogin, LoginError>) -> bool {
        matches!(r, Err(LoginError::Wrong))
    }

    #[test]
    fn the_file_holds_argon2id_hashes_only_its_owner_reads() {
        use std::os::unix::fs::PermissionsExt as _;
        let (_dir, accounts, _) = logins(Duration::from_secs(60));
        let text = std::fs::read_to_string(accounts.path()).unwrap();
        assert!(text.contains("$argon2id$"), "{text}");
        assert!(!text.contains("correct horse"));
        let mode = std::fs::metadata(accounts.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(accounts.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(StaffLogins::new(accounts, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn bad_ids_and_short_passwords_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = Accounts::in_dir(dir.path());
        assert!(a.set_password("bad id", "long enough").is_err());
        assert!(a.set_password("", "long enough").is_err());
        assert!(a.set_password("S\n1", "long enough").is_err());
        assert!(a.set_password("S001", "short").is_err());
        assert!(a.list().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_log_in_is_its_cookie_and_its_secret_together() {
        let (_dir, _, l) = logins(Duration::from_secs(60));
        let new = l.login("S001", pw("correct horse")).await.unwrap();
        assert_eq!((new.session_id.len(), new.secret.len()), (64, 64));
        let (sid, secret) = (new.session_id, new.secret);
        assert_eq!(l.session(&sid, &secret).unwrap().staff_id, "S001");
        // The cookie's session id without the page's secret is nothing.
        assert!(l.session(&sid, &"0".repeat(64)).is_err());
        assert!(l.session(&sid, "").is_err());
        assert!(wrong(l.login("S001", pw("wrong horse")).await));
        assert!(wrong(l.login("S999", pw("correct horse")).await));
        assert!(l.session("not-a-session", &secret).is_err());
        assert_eq!(l.logout(&sid, "wrong"), None);
        assert!(
            l.session(&sid, &secret).is_ok(),
            "a wrong secret logs nobody out"
        );
        assert_eq!(l.logout(&sid, &secret).as_deref(), Some("S001"));
        assert!(l.session(&sid, &secret).is_err());
    }

    #[tokio::test]
    async fn five_wrong_log_ins_lock_the_id_even_for_the_right_password() {
        let (_dir, _, l) = logins(Duration::from_secs(60));
        for _ in 0..MAX_FAILURES {
            assert!(wrong(l.login("S001", pw("guess")).await));
        }
        assert!(matches!(
            l.login("S001", pw("correct horse")).await,
            Err(LoginError::Throttled { .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn log_ins_sent_at_once_get_no_more_guesses_than_one_after_another() {
        let (_dir, _, l) = logins(Duration::from_secs(60));
        let tries: Vec<_> = (0..12)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move { l.login("S001", pw("guess")).await })
            })
            .collect();
        let mut checked = 0;
        for t in tries {
            match t.await.unwrap() {
                Err(LoginError::Wrong) => checked += 1,
                Err(LoginError::Throttled { .. } | LoginError::Busy) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(checked <= MAX_FAILURES, "{checked} passwords were checked");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_session_ends_and_its_stream_is_told() {
        let (_dir, _, l) = logins(Duration::from_secs(30));
        let new = l.login("S001", pw("correct horse")).await.unwrap();
        let (sid, secret) = (new.session_id, new.secret);
        let mut alive = l.session(&sid, &secret).unwrap().alive;
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(l.session(&sid, &secret).is_ok(), "a request keeps it alive");
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(l.sweep().is_empty());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(l.sweep(), vec!["S001".to_owned()]);
        assert!(l.session(&sid, &secret).is_err());
        alive.changed().await.ok();
        assert!(!*alive.borrow());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_after_the_idle_time_out_ends_the_log_in_and_says_whose() {
        let (_dir, _, l) = logins(Duration::from_secs(30));
        let new = l.login("S001", pw("correct horse")).await.unwrap();
        tokio::time::advance(Duration::from_secs(31)).await;
        let not = l.session(&new.session_id, &new.secret).unwrap_err();
        assert_eq!(not.ended.as_deref(), Some("S001"));
    }

    #[tokio::test]
    async fn removing_an_account_ends_its_sessions_and_says_whose() {
        let (_dir, accounts, l) = logins(Duration::from_secs(60));
        let new = l.login("S001", pw("correct horse")).await.unwrap();
        accounts.remove("S001").unwrap();
        // The file's time must change for the kiosk to notice; make sure it does.
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(accounts.path())
            .unwrap()
            .set_modified(later)
            .unwrap();
        let not = l.session(&new.session_id, &new.secret).unwrap_err();
        assert_eq!(not.ended.as_deref(), Some("S001"));
    }

    #[tokio::test]
    async fn the_sweep_ends_the_log_ins_of_a_removed_account() {
        let (_dir, accounts, l) = logins(Duration::from_secs(60));
        l.login("S001", pw("correct horse")).await.unwrap();
        accounts.remove("S001").unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(accounts.path())
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(l.sweep(), vec!["S001".to_owned()]);
    }

    #[test]
    fn a_state_folder_others_may_write_to_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let a = Accounts::in_dir(dir.path());
        assert!(a.set_password("S001", "correct horse").is_err());
    }
}
