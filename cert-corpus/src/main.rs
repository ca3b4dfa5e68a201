//! `cert-corpus DIR`: writes the certificate corpus (and its manifest) into DIR.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: cert-corpus DIR");
        return ExitCode::from(2);
    };
    let dir = std::path::PathBuf::from(dir);
    for file in onshi_cert_corpus::generate() {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            if let Err(e) = std::fs::create_dir_all(parent) {
                eprintln!("cert-corpus: {}: {e}", parent.display());
                return ExitCode::FAILURE;
            }
        }
        if let Err(e) = std::fs::write(&path, &file.bytes) {
            eprintln!("cert-corpus: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
