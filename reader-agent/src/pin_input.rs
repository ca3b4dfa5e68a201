//! PIN sources: an interactive prompt without echo, or lines on standard input (for scripts
//! and tests). Never the command line: argv is visible to every process on the machine.

use std::io::BufRead;

use onshi_jpki::Pin;
use zeroize::Zeroizing;

use crate::confirm::PinSource;

/// Prompts on the terminal without echo.
#[derive(Debug, Default)]
pub struct TtyPrompt;

impl PinSource for TtyPrompt {
    fn next_pin(&mut self, _tries_left: u8) -> Result<Option<Pin>, String> {
        let typed = Zeroizing::new(
            rpassword::prompt_password("PIN: ").map_err(|e| format!("cannot read the PIN: {e}"))?,
        );
        Pin::new(typed.trim()).map(Some).map_err(|e| format!("{e}"))
    }
}

/// Reads one PIN per line from standard input; end of input means no more PINs.
#[derive(Debug, Default)]
pub struct StdinLines;

impl PinSource for StdinLines {
    fn next_pin(&mut self, _tries_left: u8) -> Result<Option<Pin>, String> {
        let mut line = Zeroizing::new(String::new());
        let n = std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the PIN from stdin: {e}"))?;
        if n == 0 {
            return Ok(None);
        }
        Pin::new(line.trim_end_matches(['\r', '\n']))
            .map(Some)
            .map_err(|e| format!("{e}"))
    }
}
