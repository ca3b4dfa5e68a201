//! The optional APDU trace: one line per command (`> `), response (`< `) or card event
//! (`# `), in spaced hex. The data of VERIFY (and of every other PIN-carrying instruction) is
//! always written as `<redacted N bytes>`, whether or not the command parses: a PIN never
//! reaches a trace.

use std::fmt;
use std::io::Write;

use onshi_jpki::apdu::{redacted_command_hex, spaced_hex};

/// Where trace lines go, if anywhere. Each line is flushed at once so a trace survives the
/// process being killed.
pub struct ApduTrace {
    sink: Option<Box<dyn Write + Send>>,
}

impl fmt::Debug for ApduTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApduTrace")
            .field("enabled", &self.sink.is_some())
            .finish()
    }
}

impl ApduTrace {
    /// No trace.
    pub fn disabled() -> Self {
        Self { sink: None }
    }

    /// Trace to a writer (a file, stderr, a test buffer).
    pub fn new(sink: Box<dyn Write + Send>) -> Self {
        Self { sink: Some(sink) }
    }

    /// A command APDU as received, redacted.
    pub fn command(&mut self, raw: &[u8]) {
        if self.sink.is_some() {
            self.line(&format!("> {}", redacted_command_hex(raw)));
        }
    }

    /// A response APDU as sent. Responses never carry a PIN.
    pub fn response(&mut self, raw: &[u8]) {
        if self.sink.is_some() {
            self.line(&format!("< {}", spaced_hex(raw)));
        }
    }

    /// A card event: power on, reset, removal.
    pub fn note(&mut self, text: &str) {
        if self.sink.is_some() {
            self.line(&format!("# {text}"));
        }
    }

    fn line(&mut self, line: &str) {
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        if let Err(error) = writeln!(sink, "{line}").and_then(|()| sink.flush()) {
            // A broken trace must not stop the card; say so once and stop tracing.
            tracing::warn!(%error, "APDU trace write failed; tracing disabled");
            self.sink = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn redacts_pins_and_formats_lines() {
        let out = Shared::default();
        let mut trace = ApduTrace::new(Box::new(out.clone()));
        trace.note("power on");
        trace.command(&[0x00, 0x20, 0x00, 0x80, 0x04, 0x34, 0x37, 0x32, 0x39]);
        trace.response(&[0x90, 0x00]);
        // Malformed (Lc too large) still redacted.
        trace.command(&[0x00, 0x20, 0x00, 0x98, 0x09, 0x34, 0x37, 0x32, 0x39]);
        trace.command(&[0x00, 0xB0, 0x00, 0x00, 0x04]);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "# power on\n\
             > 00 20 00 80 04 <redacted 4 bytes>\n\
             < 90 00\n\
             > 00 20 00 98 <redacted 5 bytes>\n\
             > 00 B0 00 00 04\n"
        );
        assert!(!text.contains("34 37"));
    }

    #[test]
    fn failing_sink_disables_itself() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("gone"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut trace = ApduTrace::new(Box::new(Broken));
        trace.note("x");
        assert!(trace.sink.is_none());
        trace.note("y");
    }
}
