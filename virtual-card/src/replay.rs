//! Replaying a recorded APDU trace as a card, so a session seen with one card (a bug report,
//! a field problem) can be reproduced anywhere without the card or its keys.
//!
//! The trace is the text both the reader agent (`reader-agent confirm --trace FILE`) and the
//! virtual card (`virtual-card attach --trace FILE`) write: `> ` command, `< ` response, `# `
//! note, spaced hex, PIN data written as `<redacted N bytes>`. A `# atr HEX` note (the agent
//! writes one when it connects) gives the ATR to answer with.
//!
//! The replaying card answers the recorded responses in order. A command matches the next
//! recorded one when:
//! - the bytes are equal; or
//! - the recorded command was redacted (VERIFY, CHANGE REFERENCE DATA, ...): the header and
//!   Lc are equal and the data has the recorded length — the PIN itself is never known; or
//! - it is COMPUTE DIGITAL SIGNATURE (`80 2A`): header and Lc are equal. Its data is the
//!   DigestInfo of a challenge that differs on every run, so the recorded signature comes
//!   back, and a service will reject it (`SIGNATURE_INVALID`): replay reproduces what the
//!   card did, not a valid authentication.
//!
//! A recorded command without a response (the card vanished mid-command) is replayed by
//! pulling the card out. A command that does not match is answered `6F00` and reported (the
//! session diverged from the recording); after the last recorded command every command is
//! answered `6F00`.

use onshi_jpki::apdu::{redacted_command_hex, StatusWord};
use onshi_jpki::constants::{CLA_PROPRIETARY, INS_COMPUTE_DIGITAL_SIGNATURE};

use crate::profile::DEFAULT_ATR;
use crate::vpcd::CardBehaviour;

/// How a recorded command is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(Vec<u8>),
    /// Header (and Lc, when present) as recorded, then `data_len` bytes never recorded.
    Redacted {
        prefix: Vec<u8>,
        data_len: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Exchange {
    command: Pattern,
    /// `None`: the card vanished before answering.
    response: Option<Vec<u8>>,
    /// 1-based line of the command in the trace, for reports.
    line: usize,
}

/// What happened to one command during replay, for the caller to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayEvent {
    /// Command `index` (1-based) of the recording was answered.
    Matched { index: usize },
    /// The command did not match recorded command `index` (trace line `line`).
    Diverged {
        index: usize,
        line: usize,
        expected: String,
        got: String,
    },
    /// A command arrived after the whole recording was replayed.
    PastEnd { got: String },
}

/// A recorded trace acting as a card.
#[derive(Debug)]
pub struct ReplayCard {
    atr: Vec<u8>,
    exchanges: Vec<Exchange>,
    cursor: usize,
    events: Vec<ReplayEvent>,
}

fn parse_hex_tokens(tokens: &[&str]) -> Option<Vec<u8>> {
    tokens
        .iter()
        .map(|t| u8::from_str_radix(t, 16).ok().filter(|_| t.len() == 2))
        .collect()
}

impl ReplayCard {
    /// Parses a trace. Errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut atr = DEFAULT_ATR.to_vec();
        let mut exchanges: Vec<Exchange> = Vec::new();
        let mut awaiting_response = false;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if let Some(cmd) = line.strip_prefix("> ") {
                let tokens: Vec<&str> = cmd.split_whitespace().collect();
                let pattern = match tokens.iter().position(|t| t.starts_with("<redacted")) {
                    Some(at) => {
                        let prefix = parse_hex_tokens(&tokens[..at])
                            .ok_or_else(|| format!("line {line_no}: bad hex in {cmd:?}"))?;
                        let data_len = tokens
                            .get(at + 1)
                            .and_then(|n| n.parse::<usize>().ok())
                            .ok_or_else(|| format!("line {line_no}: bad redaction in {cmd:?}"))?;
                        Pattern::Redacted { prefix, data_len }
                    }
                    None => Pattern::Exact(
                        parse_hex_tokens(&tokens)
                            .ok_or_else(|| format!("line {line_no}: bad hex in {cmd:?}"))?,
                    ),
                };
                exchanges.push(Exchange {
                    command: pattern,
                    response: None,
                    line: line_no,
                });
                awaiting_response = true;
            } else if let Some(resp) = line.strip_prefix("< ") {
                let tokens: Vec<&str> = resp.split_whitespace().collect();
                let bytes = parse_hex_tokens(&tokens)
                    .ok_or_else(|| format!("line {line_no}: bad hex in {resp:?}"))?;
                match exchanges.last_mut() {
                    Some(e) if awaiting_response => e.response = Some(bytes),
                    _ => return Err(format!("line {line_no}: a response without a command")),
                }
                awaiting_response = false;
            } else if let Some(note) = line.strip_prefix("# atr ") {
                let tokens: Vec<&str> = note.split_whitespace().collect();
                atr = parse_hex_tokens(&tokens)
                    .filter(|a| (2..=33).contains(&a.len()))
                    .ok_or_else(|| format!("line {line_no}: bad ATR {note:?}"))?;
            }
            // Other notes (power on, reset) and blank lines carry nothing to replay.
        }
        if exchanges.is_empty() {
            return Err("the trace holds no command".into());
        }
        Ok(Self {
            atr,
            exchanges,
            cursor: 0,
            events: Vec::new(),
        })
    }

    /// Replaces the ATR (the recording may lack one).
    pub fn set_atr(&mut self, atr: Vec<u8>) {
        self.atr = atr;
    }

    /// Number of recorded commands.
    pub fn len(&self) -> usize {
        self.exchanges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.exchanges.is_empty()
    }

    /// Commands replayed so far.
    pub fn position(&self) -> usize {
        self.cursor
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<ReplayEvent> {
        std::mem::take(&mut self.events)
    }

    fn matches(pattern: &Pattern, apdu: &[u8]) -> bool {
        match pattern {
            Pattern::Exact(bytes) => {
                bytes == apdu
                    || (matches!(
                        (bytes.as_slice(), apdu),
                        (
                            [CLA_PROPRIETARY, INS_COMPUTE_DIGITAL_SIGNATURE, ..],
                            [CLA_PROPRIETARY, INS_COMPUTE_DIGITAL_SIGNATURE, ..]
                        )
                    ) && bytes.get(..5) == apdu.get(..5)
                        && bytes.len() == apdu.len())
            }
            Pattern::Redacted { prefix, data_len } => {
                apdu.starts_with(prefix) && apdu.len() >= prefix.len() + data_len
            }
        }
    }

    fn describe(pattern: &Pattern) -> String {
        match pattern {
            Pattern::Exact(bytes) => redacted_command_hex(bytes),
            Pattern::Redacted { prefix, data_len } => {
                format!(
                    "{} <redacted {data_len} bytes>",
                    redacted_command_hex(prefix)
                )
            }
        }
    }
}

impl CardBehaviour for ReplayCard {
    fn atr(&self) -> &[u8] {
        &self.atr
    }

    fn answer(&mut self, apdu: &[u8]) -> Option<Vec<u8>> {
        let failure = StatusWord::NO_PRECISE_DIAGNOSIS.to_bytes().to_vec();
        let Some(next) = self.exchanges.get(self.cursor) else {
            self.events.push(ReplayEvent::PastEnd {
                got: redacted_command_hex(apdu),
            });
            return Some(failure);
        };
        if !Self::matches(&next.command, apdu) {
            self.events.push(ReplayEvent::Diverged {
                index: self.cursor + 1,
                line: next.line,
                expected: Self::describe(&next.command),
                got: redacted_command_hex(apdu),
            });
            return Some(failure);
        }
        self.cursor += 1;
        self.events
            .push(ReplayEvent::Matched { index: self.cursor });
        next.response.clone()
    }

    fn power_off(&mut self) {}

    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "\
# atr 3B E0 00 FF 81 31 FE 45 14
> 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01
< 90 00
> 00 20 00 80 04 <redacted 4 bytes>
< 90 00
> 80 2A 00 80 03 01 02 03 00
< AA BB 90 00
> 00 B0 00 00 04
";

    #[test]
    fn replays_in_order_matching_redacted_and_signing_by_header() {
        let mut card = ReplayCard::parse(TRACE).unwrap();
        assert_eq!(card.len(), 4);
        assert_eq!(card.atr(), DEFAULT_ATR);
        assert_eq!(
            card.answer(&hex::decode("00A4040C0AD392F000260100000001").unwrap()),
            Some(vec![0x90, 0x00])
        );
        // A different PIN of the same length matches: the PIN was never recorded.
        assert_eq!(
            card.answer(&hex::decode("002000800439393939").unwrap()),
            Some(vec![0x90, 0x00])
        );
        // Other data to sign, same header and length: the recorded signature.
        assert_eq!(
            card.answer(&hex::decode("802A008003090909 00".replace(' ', "")).unwrap()),
            Some(vec![0xAA, 0xBB, 0x90, 0x00])
        );
        // A different command diverges and does not advance.
        assert_eq!(
            card.answer(&[0x00, 0xB0, 0x00, 0x04, 0x04]),
            Some(vec![0x6F, 0x00])
        );
        // The recorded command without a response: the card vanishes.
        assert_eq!(card.answer(&[0x00, 0xB0, 0x00, 0x00, 0x04]), None);
        assert_eq!(
            card.answer(&[0x00, 0xB0, 0x00, 0x00, 0x04]),
            Some(vec![0x6F, 0x00])
        );
        let events = card.take_events();
        assert!(matches!(
            events[3],
            ReplayEvent::Diverged {
                index: 4,
                line: 8,
                ..
            }
        ));
        assert!(matches!(events[5], ReplayEvent::PastEnd { .. }));
    }

    #[test]
    fn bad_traces_are_refused_with_the_line() {
        assert!(ReplayCard::parse("").is_err());
        assert!(ReplayCard::parse("< 90 00\n")
            .unwrap_err()
            .contains("line 1"));
        assert!(ReplayCard::parse("> 00 ZZ\n")
            .unwrap_err()
            .contains("line 1"));
        assert!(ReplayCard::parse("# atr 3B\n> 00 A4\n")
            .unwrap_err()
            .contains("ATR"));
        // A wrong-length PIN does not match a redacted VERIFY.
        let mut card = ReplayCard::parse("> 00 20 00 80 04 <redacted 4 bytes>\n< 90 00\n").unwrap();
        assert_eq!(
            card.answer(&hex::decode("0020008003393939").unwrap()),
            Some(vec![0x6F, 0x00])
        );
    }

    /// Arbitrary text, and traces with arbitrary tokens, never panic the parser or the card.
    #[test]
    fn never_panics() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let pieces = [
            "> ",
            "< ",
            "# atr ",
            "00",
            "B0",
            "<redacted",
            "4",
            "bytes>",
            "ZZ",
            " ",
            "\n",
            "FFF",
        ];
        for _ in 0..5_000 {
            let n = next() % 40;
            let text: String = (0..n).map(|_| pieces[(next() % 12) as usize]).collect();
            if let Ok(mut card) = ReplayCard::parse(&text) {
                for _ in 0..5 {
                    let len = (next() % 12) as usize;
                    let apdu: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                    let _ = card.answer(&apdu);
                }
            }
        }
    }
}
