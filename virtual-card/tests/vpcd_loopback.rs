//! The vpcd transport against a TcpListener playing the vpcd driver: framing, control
//! commands, APDUs, reconnection after a dropped connection or a driver that is not up yet,
//! the removal fault, and the redacted trace.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{PIN, PIN_HEX};
use onshi_virtual_card::trace::ApduTrace;
use onshi_virtual_card::vpcd::{self, Outcome, VpcdConfig, VpcdEvent};
use onshi_virtual_card::CardState;

const WAIT: Duration = Duration::from_secs(10);

const SELECT_JPKI: &str = "00A4040C0AD392F000260100000001";

/// What the card thread reports, as plain data.
#[derive(Debug, PartialEq)]
enum Seen {
    Connected,
    Disconnected,
    ConnectFailed,
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

struct RunningCard {
    stop: Arc<AtomicBool>,
    events: Receiver<Seen>,
    thread: JoinHandle<Outcome>,
    trace: SharedBuf,
}

impl RunningCard {
    fn start(address: String, remove_after_apdus: Option<u64>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, events) = mpsc::channel();
        let trace = SharedBuf::default();
        let mut card = common::card(CardState::default());
        let config = VpcdConfig {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            remove_after_apdus,
            ..VpcdConfig::new(address)
        };
        let thread_stop = stop.clone();
        let mut thread_trace = ApduTrace::new(Box::new(trace.clone()));
        let thread = std::thread::spawn(move || {
            let mut on_event = |e: VpcdEvent<'_>| {
                let seen = match e {
                    VpcdEvent::Connected { .. } => Seen::Connected,
                    VpcdEvent::Disconnected { .. } => Seen::Disconnected,
                    VpcdEvent::ConnectFailed { .. } => Seen::ConnectFailed,
                    _ => return,
                };
                let _ = tx.send(seen);
            };
            vpcd::run(
                &mut card,
                &config,
                &mut thread_trace,
                &thread_stop,
                &mut on_event,
            )
        });
        Self {
            stop,
            events,
            thread,
            trace,
        }
    }

    /// Waits for the next event of this kind, skipping others.
    fn wait_for(&self, wanted: Seen) {
        loop {
            let seen = self
                .events
                .recv_timeout(WAIT)
                .expect("no event from the card");
            if seen == wanted {
                return;
            }
        }
    }

    fn stop(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// The vpcd side of one connection.
struct Driver(TcpStream);

impl Driver {
    fn accept(listener: &TcpListener) -> Self {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Self(stream)
    }

    fn send(&mut self, payload: &[u8]) {
        let mut frame = (payload.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(payload);
        self.0.write_all(&frame).unwrap();
    }

    /// Reads one frame; `None` on EOF.
    fn receive(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 2];
        match self.0.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(e) => panic!("{e}"),
        }
        let mut payload = vec![0; usize::from(u16::from_be_bytes(len))];
        self.0.read_exact(&mut payload).unwrap();
        Some(payload)
    }

    fn apdu(&mut self, hex_apdu: &str) -> String {
        self.send(&hex::decode(hex_apdu).unwrap());
        hex::encode_upper(self.receive().expect("the card closed the connection"))
    }
}

fn verify_pin_apdu() -> String {
    format!("0020009804{}", hex::encode(PIN))
}

#[test]
fn frames_controls_apdus_and_reconnection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let card = RunningCard::start(listener.local_addr().unwrap().to_string(), None);
    card.wait_for(Seen::Connected);
    let mut vpcd = Driver::accept(&listener);

    vpcd.send(&[0x01]); // power on: no reply
    vpcd.send(&[0x04]); // get ATR
    assert_eq!(
        vpcd.receive().unwrap(),
        vec![0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14]
    );
    assert_eq!(vpcd.apdu(SELECT_JPKI), "9000");
    assert_eq!(vpcd.apdu(&verify_pin_apdu()), "9000");
    let di = format!("3031300D060960864801650304020105000420{}", "AB".repeat(32));
    let sign = format!("802A009733{di}00");
    let signature = vpcd.apdu(&sign);
    assert_eq!(signature.len(), (256 + 2) * 2);
    assert!(signature.ends_with("9000"));
    // Reset (02) ends the session: no application selected, PIN no longer verified.
    vpcd.send(&[0x02]);
    assert_eq!(vpcd.apdu("00A4020C020017"), "6A82");
    assert_eq!(vpcd.apdu(SELECT_JPKI), "9000");
    assert_eq!(vpcd.apdu(&verify_pin_apdu()), "9000");
    // Power off (00) too.
    vpcd.send(&[0x00]);
    vpcd.send(&[0x01]);
    assert_eq!(vpcd.apdu(SELECT_JPKI), "9000");
    assert_eq!(vpcd.apdu(&sign), "6982");
    assert_eq!(vpcd.apdu(&verify_pin_apdu()), "9000");
    // A malformed APDU is answered, not fatal.
    assert_eq!(vpcd.apdu("00A4040C05D3"), "6700");

    // The driver goes away (pcscd restart): the card reconnects to the next accept, and the
    // verification did not survive the lost power.
    drop(vpcd);
    card.wait_for(Seen::Disconnected);
    card.wait_for(Seen::Connected);
    let mut vpcd = Driver::accept(&listener);
    vpcd.send(&[0x04]);
    assert_eq!(vpcd.receive().unwrap().len(), 9);
    vpcd.send(&[0x01]);
    assert_eq!(vpcd.apdu(SELECT_JPKI), "9000");
    assert_eq!(vpcd.apdu(&sign), "6982");

    let trace_buf = card.trace.clone();
    assert_eq!(card.stop(), Outcome::Stopped);
    let trace = trace_buf.text();
    assert!(
        trace.contains("> 00 20 00 98 04 <redacted 4 bytes>\n"),
        "{trace}"
    );
    assert!(trace.contains("# power on\n"));
    assert!(trace.contains("# reset\n"));
    assert!(trace.contains("< 69 82\n"));
    assert!(!trace.contains(PIN_HEX), "{trace}");
    assert!(!trace.to_lowercase().contains(&hex::encode(PIN)));
}

#[test]
fn waits_for_a_driver_that_is_not_up_yet() {
    // Reserve a port, then close it: connecting is refused until the "driver" starts.
    let address = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let card = RunningCard::start(address.clone(), None);
    card.wait_for(Seen::ConnectFailed);
    card.wait_for(Seen::ConnectFailed);
    let listener = TcpListener::bind(&address).unwrap();
    card.wait_for(Seen::Connected);
    let mut vpcd = Driver::accept(&listener);
    vpcd.send(&[0x01]);
    assert_eq!(vpcd.apdu(SELECT_JPKI), "9000");
    assert_eq!(card.stop(), Outcome::Stopped);
}

#[test]
fn removal_fault_closes_instead_of_answering() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let card = RunningCard::start(listener.local_addr().unwrap().to_string(), Some(3));
    card.wait_for(Seen::Connected);
    let mut vpcd = Driver::accept(&listener);
    vpcd.send(&[0x01]);
    vpcd.send(&[0x04]);
    assert_eq!(vpcd.receive().unwrap().len(), 9); // control frames do not count
    assert_eq!(vpcd.apdu(SELECT_JPKI), "9000");
    assert_eq!(vpcd.apdu("00A4020C02000A"), "9000");
    // The third command APDU: the card is pulled out mid-read.
    vpcd.send(&hex::decode("00B0000004").unwrap());
    assert_eq!(vpcd.receive(), None);
    // It stays removed: run returns without reconnecting.
    let outcome = card.thread.join().unwrap();
    assert_eq!(outcome, Outcome::Removed { after_apdus: 3 });
    assert!(card.events.try_iter().all(|e| e != Seen::Connected));
    let trace = card.trace.text();
    assert!(
        trace.ends_with("> 00 B0 00 00 04\n# card removed before answering\n"),
        "{trace}"
    );
}
