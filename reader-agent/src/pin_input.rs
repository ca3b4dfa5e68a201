//! PIN sources: an interactive prompt without echo, or lines on standard input (for scripts
//! and tests). Never the command line: argv is visible to every process on the machine.

use std::io::Read;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use onshi_jpki::Pin;
use zeroize::{Zeroize, Zeroizing};

use crate::confirm::PinSource;

/// Prompts on the terminal without echo.
#[derive(Debug, Default)]
pub struct TtyPrompt;

impl PinSource for TtyPrompt {
    /// A malformed PIN (not 4 digits) is said and asked again: it never reaches the card, so
    /// it costs no try.
    fn next_pin(&mut self, _tries_left: u8) -> Result<Option<Pin>, String> {
        loop {
            let typed = Zeroizing::new(
                rpassword::prompt_password("PIN: ")
                    .map_err(|e| format!("cannot read the PIN: {e}"))?,
            );
            match Pin::new(typed.trim()) {
                Ok(pin) => return Ok(Some(pin)),
                Err(e) => eprintln!("{e}; try again (暗証番号は4桁の数字です)"),
            }
        }
    }
}

/// Reads one PIN per line from standard input; end of input means no more PINs.
///
/// Standard input is read through a duplicate of its descriptor, one byte at a time, and not
/// through `std::io::stdin()`: that handle's process-wide buffer would keep every PIN of the
/// input (all lines it read ahead) in memory, unwiped, until the process ends.
///
/// A malformed line (not 4 digits) is a usage error of the script that wrote it: it is
/// refused before the card sees it and [`StdinLines::usage_error`] says so afterwards, so
/// that the command exits 2 (usage) and not 3 (card failure).
#[derive(Debug, Default)]
pub struct StdinLines {
    malformed: Arc<AtomicBool>,
}

impl StdinLines {
    /// A handle that reads true once a malformed line was refused.
    pub fn usage_error(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.malformed)
    }
}

impl PinSource for StdinLines {
    fn next_pin(&mut self, _tries_left: u8) -> Result<Option<Pin>, String> {
        let err = |e: std::io::Error| format!("cannot read the PIN from stdin: {e}");
        let mut stdin =
            std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned().map_err(err)?);
        let Some(line) = read_secret_line(&mut stdin).map_err(err)? else {
            return Ok(None);
        };
        parse_line(&line, &self.malformed)
    }
}

fn parse_line(line: &[u8], malformed: &AtomicBool) -> Result<Option<Pin>, String> {
    Pin::from_bytes(line).map(Some).map_err(|e| {
        malformed.store(true, Ordering::SeqCst);
        format!("a malformed PIN on stdin: {e}")
    })
}

/// The longest line accepted where a PIN is expected; longer input is refused rather than
/// read without bound.
const MAX_PIN_LINE: usize = 64;

/// Reads one line (without its `\n` or `\r\n`) byte by byte, consuming nothing after its end,
/// into a buffer wiped on drop. `None` at end of input.
fn read_secret_line(input: &mut impl Read) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_PIN_LINE));
    let mut byte = [0u8; 1];
    loop {
        match input.read(&mut byte) {
            Ok(0) if line.is_empty() => return Ok(None),
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if line.len() == MAX_PIN_LINE => {
                byte.zeroize();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("a line longer than {MAX_PIN_LINE} bytes where a PIN was expected"),
                ));
            }
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    byte.zeroize();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn reads_one_line_at_a_time_and_nothing_beyond() {
        let mut input = Cursor::new(b"1234\r\n5678\nrest".to_vec());
        assert_eq!(
            read_secret_line(&mut input).unwrap().unwrap().as_slice(),
            b"1234"
        );
        // Nothing of the next PIN was read ahead into a buffer.
        assert_eq!(input.position(), 6);
        assert_eq!(
            read_secret_line(&mut input).unwrap().unwrap().as_slice(),
            b"5678"
        );
        assert_eq!(
            read_secret_line(&mut input).unwrap().unwrap().as_slice(),
            b"rest"
        );
        assert!(read_secret_line(&mut input).unwrap().is_none());
    }

    #[test]
    fn a_malformed_line_is_flagged_as_a_usage_error() {
        let flag = AtomicBool::new(false);
        assert!(parse_line(b"1234", &flag).unwrap().is_some());
        assert!(!flag.load(Ordering::SeqCst));
        for bad in [&b"12a4"[..], b"123", b"12345", b""] {
            let flag = AtomicBool::new(false);
            let err = parse_line(bad, &flag).unwrap_err();
            assert!(err.contains("malformed"), "{err}");
            assert!(flag.load(Ordering::SeqCst));
        }
    }

    #[test]
    fn an_endless_line_is_refused_not_read_without_bound() {
        let mut endless = std::io::repeat(b'7');
        assert!(read_secret_line(&mut endless).is_err());
    }
}
