//! Private keys on disk: the service refuses to start on a key file that others than its
//! owner can read or write (a key others can read is a key others have).

use std::path::Path;

/// Refuses a secret file whose mode gives anything to group or others.
pub fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} holds a private key and is readable or writable by others (mode {mode:03o}): \
             chmod 600 it",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn only_owner_only_modes_pass() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, b"x").unwrap();
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o640, false),
            (0o604, false),
            (0o660, false),
        ] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(check_private(&key).is_ok(), ok, "{mode:o}");
        }
        assert!(check_private(&dir.path().join("missing")).is_err());
    }
}
