//! Attaching a [`VirtualCard`] to pcscd through the vsmartcard vpcd driver (jpki-card.md §7).
//!
//! The driver listens (127.0.0.1:35963 for slot 0 by default) and the card connects to it as
//! a TCP client; closing the socket is pulling the card out. Both directions carry frames of
//! a 2-byte big-endian length and a payload. A 1-byte payload is a control command: `00`
//! power off, `01` power on, `02` reset (no reply) and `04` get ATR (reply: the framed ATR).
//! A longer payload is a command APDU, answered with the framed response APDU.
//!
//! When the connection cannot be made or drops (pcscd restarted, EOF, reset), the card tries
//! again with a bounded exponential backoff (50 ms doubling to 1 s by default), forever unless
//! `stop` is set, reporting each attempt through the event callback. Whatever ends a
//! connection, the card loses power, so a verified PIN never outlives it.
//!
//! Scripted faults ([`crate::fault`]) act here: removal closes the socket instead of
//! answering (the card then stays removed and [`run`] returns), a mute card reads commands
//! and never answers, latency delays every response, corruptions alter the card's answer.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::card::VirtualCard;
use crate::fault::{Action, Fault, FaultInjector, FaultPlan};
use crate::trace::ApduTrace;

/// Where Debian's vpcd driver listens for slot 0.
pub const DEFAULT_VPCD_ADDRESS: &str = "127.0.0.1:35963";

const CTRL_POWER_OFF: u8 = 0x00;
const CTRL_POWER_ON: u8 = 0x01;
const CTRL_RESET: u8 = 0x02;
const CTRL_GET_ATR: u8 = 0x04;

/// How long a blocked read waits before looking at the stop flag again.
const STOP_POLL: Duration = Duration::from_millis(100);

/// How to reach vpcd and how to behave.
#[derive(Debug, Clone)]
pub struct VpcdConfig {
    /// `HOST:PORT` of the vpcd driver.
    pub address: String,
    /// First wait after a failed or dropped connection.
    pub initial_backoff: Duration,
    /// The wait doubles up to this.
    pub max_backoff: Duration,
    /// Fault: pull the card out instead of answering this command APDU (1-based). The same
    /// as `Fault::RemoveAfterApdus` in `faults`.
    pub remove_after_apdus: Option<u64>,
    /// Scripted transport faults.
    pub faults: FaultPlan,
    /// Faults armed while the card runs (the rack's `arm` command): drained into the card's
    /// fault injector before each command APDU.
    pub live_faults: Option<Arc<Mutex<Vec<Fault>>>>,
}

impl VpcdConfig {
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            remove_after_apdus: None,
            faults: FaultPlan::default(),
            live_faults: None,
        }
    }
}

/// What happened on the way, for the caller to log or wait on.
#[derive(Debug)]
#[non_exhaustive]
pub enum VpcdEvent<'a> {
    /// Connected to vpcd: the card is in the reader.
    Connected { address: &'a str },
    /// The connection ended; the card will reconnect after `retry_in`.
    Disconnected { reason: &'a str, retry_in: Duration },
    /// Connecting failed; the card will try again after `retry_in`.
    ConnectFailed {
        error: &'a io::Error,
        retry_in: Duration,
    },
}

/// What the vpcd loop serves: the virtual card, or a recorded trace replayed as a card.
pub trait CardBehaviour {
    fn atr(&self) -> &[u8];
    /// Answers a command APDU; `None` means the card vanishes instead of answering (the
    /// connection is closed and [`run`] returns [`Outcome::Removed`]).
    fn answer(&mut self, apdu: &[u8]) -> Option<Vec<u8>>;
    fn power_off(&mut self);
    fn reset(&mut self);
}

impl CardBehaviour for VirtualCard {
    fn atr(&self) -> &[u8] {
        VirtualCard::atr(self)
    }
    fn answer(&mut self, apdu: &[u8]) -> Option<Vec<u8>> {
        Some(self.process(apdu))
    }
    fn power_off(&mut self) {
        VirtualCard::power_off(self)
    }
    fn reset(&mut self) {
        VirtualCard::reset(self)
    }
}

/// Why [`run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `stop` was set.
    Stopped,
    /// The removal fault fired on this command APDU.
    Removed { after_apdus: u64 },
}

/// How one connection ended.
enum ConnectionEnd {
    Dropped { reason: String, served_frames: bool },
    Stopped,
    Removed,
}

/// Serves the card to vpcd until `stop` is set or the removal fault fires, reconnecting
/// whenever the connection fails or drops.
pub fn run(
    card: &mut dyn CardBehaviour,
    config: &VpcdConfig,
    trace: &mut ApduTrace,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(VpcdEvent<'_>),
) -> Outcome {
    let mut backoff = config.initial_backoff;
    let mut apdus_seen: u64 = 0;
    let mut plan = config.faults.clone();
    if let Some(n) = config.remove_after_apdus {
        plan.faults.push(Fault::RemoveAfterApdus(n));
    }
    let mut faults = FaultInjector::new(plan);
    loop {
        if stop.load(Ordering::Relaxed) {
            return Outcome::Stopped;
        }
        match TcpStream::connect(&config.address) {
            Ok(stream) => {
                on_event(VpcdEvent::Connected {
                    address: &config.address,
                });
                let end = serve_connection(
                    card,
                    stream,
                    (&mut faults, config.live_faults.as_deref()),
                    trace,
                    stop,
                    &mut apdus_seen,
                );
                // However the connection ended, the card lost power.
                card.power_off();
                match end {
                    ConnectionEnd::Stopped => return Outcome::Stopped,
                    ConnectionEnd::Removed => {
                        return Outcome::Removed {
                            after_apdus: apdus_seen,
                        }
                    }
                    ConnectionEnd::Dropped {
                        reason,
                        served_frames,
                    } => {
                        // A connection that did work earns a fresh backoff; one dropped at
                        // once keeps growing it, so a peer that accepts and closes cannot
                        // make the card spin.
                        if served_frames {
                            backoff = config.initial_backoff;
                        }
                        on_event(VpcdEvent::Disconnected {
                            reason: &reason,
                            retry_in: backoff,
                        });
                    }
                }
            }
            Err(error) => on_event(VpcdEvent::ConnectFailed {
                error: &error,
                retry_in: backoff,
            }),
        }
        sleep_unless_stopped(backoff, stop);
        backoff = (backoff * 2).min(config.max_backoff);
    }
}

fn serve_connection(
    card: &mut dyn CardBehaviour,
    mut stream: TcpStream,
    (faults, live): (&mut FaultInjector, Option<&Mutex<Vec<Fault>>>),
    trace: &mut ApduTrace,
    stop: &AtomicBool,
    apdus_seen: &mut u64,
) -> ConnectionEnd {
    let mut served_frames = false;
    let dropped = |reason: String, served_frames: bool| ConnectionEnd::Dropped {
        reason,
        served_frames,
    };
    // Small frames both ways: without TCP_NODELAY, Nagle and delayed ACKs would add tens of
    // milliseconds to every APDU.
    if let Err(e) = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(STOP_POLL)))
    {
        return dropped(format!("cannot configure the socket: {e}"), false);
    }
    loop {
        // The vpcd driver sends a frame's length and payload in two writes without
        // TCP_NODELAY, so Nagle holds the payload until the length is ACKed; a delayed ACK
        // here would cost ~40 ms per APDU. Quick-ACK mode is not sticky: re-arm it each time.
        let _ = socket2::SockRef::from(&stream).set_tcp_quickack(true);
        let payload = match read_frame(&mut stream, stop) {
            Ok(Frame::Payload(payload)) => payload,
            Ok(Frame::Closed) => {
                return dropped("vpcd closed the connection".into(), served_frames)
            }
            Ok(Frame::Stopped) => return ConnectionEnd::Stopped,
            Err(e) => return dropped(format!("reading from vpcd failed: {e}"), served_frames),
        };
        served_frames = true;
        let reply = match payload.as_slice() {
            [] => None,
            [CTRL_POWER_OFF] => {
                card.power_off();
                trace.note("power off");
                None
            }
            [CTRL_POWER_ON] => {
                card.reset();
                trace.note("power on");
                None
            }
            [CTRL_RESET] => {
                card.reset();
                trace.note("reset");
                None
            }
            // Not traced: the driver asks for the ATR on every presence poll.
            [CTRL_GET_ATR] => Some(card.atr().to_vec()),
            [other] => {
                tracing::warn!(control = other, "ignoring an unknown vpcd control byte");
                None
            }
            apdu => {
                *apdus_seen += 1;
                trace.command(apdu);
                if let Some(live) = live {
                    if let Ok(mut armed) = live.lock() {
                        for fault in armed.drain(..) {
                            trace.note(&format!("fault armed: {fault}"));
                            faults.arm(fault);
                        }
                    }
                }
                let latency = faults.plan().latency();
                match faults.before(apdu) {
                    Action::Remove => {
                        trace.note("card removed before answering");
                        let _ = stream.shutdown(Shutdown::Both);
                        return ConnectionEnd::Removed;
                    }
                    Action::Mute => {
                        trace.note("mute: no answer");
                        None
                    }
                    Action::Answer => {
                        if !latency.is_zero() {
                            sleep_unless_stopped(latency, stop);
                        }
                        let Some(answer) = card.answer(apdu) else {
                            trace.note("card removed before answering");
                            let _ = stream.shutdown(Shutdown::Both);
                            return ConnectionEnd::Removed;
                        };
                        let response = faults.corrupt(apdu, answer);
                        trace.response(&response);
                        Some(response)
                    }
                }
            }
        };
        if let Some(reply) = reply {
            if let Err(e) = write_frame(&mut stream, &reply) {
                return dropped(format!("writing to vpcd failed: {e}"), served_frames);
            }
        }
    }
}

enum Frame {
    /// A frame's payload; wiped on drop since a VERIFY carries a PIN.
    Payload(Zeroizing<Vec<u8>>),
    /// EOF between frames.
    Closed,
    Stopped,
}

enum Fill {
    Full,
    Eof { partial: bool },
    Stopped,
}

fn read_frame(stream: &mut impl Read, stop: &AtomicBool) -> io::Result<Frame> {
    let mut len = [0u8; 2];
    match read_full(stream, &mut len, stop)? {
        Fill::Full => {}
        Fill::Eof { partial: false } => return Ok(Frame::Closed),
        Fill::Eof { partial: true } => return Err(mid_frame_eof()),
        Fill::Stopped => return Ok(Frame::Stopped),
    }
    let mut payload = Zeroizing::new(vec![0u8; usize::from(u16::from_be_bytes(len))]);
    match read_full(stream, &mut payload, stop)? {
        Fill::Full => Ok(Frame::Payload(payload)),
        Fill::Eof { .. } => Err(mid_frame_eof()),
        Fill::Stopped => Ok(Frame::Stopped),
    }
}

fn mid_frame_eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed inside a frame",
    )
}

/// Fills `buf`, waking every [`STOP_POLL`] (the socket's read timeout) to look at `stop`.
fn read_full(stream: &mut impl Read, buf: &mut [u8], stop: &AtomicBool) -> io::Result<Fill> {
    let mut filled = 0;
    while filled < buf.len() {
        if stop.load(Ordering::Relaxed) {
            return Ok(Fill::Stopped);
        }
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        match stream.read(rest) {
            Ok(0) => {
                return Ok(Fill::Eof {
                    partial: filled > 0,
                })
            }
            Ok(n) => filled += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Fill::Full)
}

fn write_frame(stream: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "payload longer than a frame"))?;
    // One write per frame, so the driver never sees a length without its payload.
    let mut frame = Vec::with_capacity(2 + payload.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    stream.write_all(&frame)?;
    stream.flush()
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let slice = Duration::from_millis(50);
    let mut left = total;
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let step = left.min(slice);
        std::thread::sleep(step);
        left -= step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_truncation_is_an_error() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &[0x00, 0xA4, 0x04, 0x0C]).unwrap();
        assert_eq!(wire, vec![0x00, 0x04, 0x00, 0xA4, 0x04, 0x0C]);
        let stop = AtomicBool::new(false);
        let mut r = io::Cursor::new(wire.clone());
        match read_frame(&mut r, &stop).unwrap() {
            Frame::Payload(p) => assert_eq!(p.as_slice(), &[0x00, 0xA4, 0x04, 0x0C]),
            _ => panic!("expected a payload"),
        }
        assert!(matches!(read_frame(&mut r, &stop).unwrap(), Frame::Closed));
        let mut cut = io::Cursor::new(wire[..4].to_vec());
        assert!(read_frame(&mut cut, &stop).is_err());
        let mut half_len = io::Cursor::new(vec![0x00]);
        assert!(read_frame(&mut half_len, &stop).is_err());
        // A zero-length frame is a frame.
        let mut empty = io::Cursor::new(vec![0x00, 0x00]);
        assert!(
            matches!(read_frame(&mut empty, &stop).unwrap(), Frame::Payload(p) if p.is_empty())
        );
        stop.store(true, Ordering::Relaxed);
        let mut r = io::Cursor::new(wire);
        assert!(matches!(read_frame(&mut r, &stop).unwrap(), Frame::Stopped));
    }

    #[test]
    fn refuses_oversized_frames() {
        let mut wire = Vec::new();
        assert!(write_frame(&mut wire, &vec![0; 70_000]).is_err());
        assert!(wire.is_empty());
    }
}
