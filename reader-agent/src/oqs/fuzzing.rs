//! The body of the `oqs_request` fuzz target (fuzz/), here so that the committed corpus is
//! replayed on stable by an ordinary test (tests/fuzz_corpus.rs) through the same code.
//!
//! The input is a request file's bytes as they arrive in `req/`: the encoding is detected from
//! the declaration, the XML parsed, and the document read as every kind of request. Nothing may
//! panic, and what parses must survive the writer: the tree written back (in the encoding it
//! came in, when nothing had to be replaced) reads back the same.

use super::codec::{self, Charset};
use super::message::{self, Kind};

/// What one input did, for the corpus replay: `"unreadable"`, or `"xml"` and the kinds it
/// was a valid request of.
pub fn request_file(data: &[u8]) -> Vec<&'static str> {
    let Ok((root, charset)) = codec::read(data) else {
        return vec!["unreadable"];
    };
    let mut verdict = vec!["xml"];
    for kind in Kind::ALL {
        if message::read_request(kind, &root).is_ok() {
            verdict.push(kind.request_prefix());
        }
    }
    for out in [charset, Charset::Utf8] {
        let written = codec::write(&root, out);
        if written.replaced == 0 {
            let (back, back_charset) = codec::read(&written.bytes)
                .unwrap_or_else(|e| panic!("the writer's output does not read back: {e}"));
            assert_eq!(back_charset, out);
            assert_eq!(
                normalised(&back),
                normalised(&root),
                "a document changed through the writer"
            );
        }
    }
    verdict
}

/// The tree as the writer keeps it: text of elements with children is not written, controls
/// XML cannot carry are dropped, and the parser normalises CR LF to LF. In that order, as the
/// writer and the reader do it: a CR and an LF with a dropped control between them are one
/// line end once written (input `fuzz/corpus/oqs_request/cr-control-lf`); U+FFFF is dropped
/// like a control (`ffff-in-text`).
fn normalised(e: &codec::Element) -> codec::Element {
    codec::Element {
        name: e.name.clone(),
        text: if e.children.is_empty() {
            e.text
                .chars()
                .filter(|c| codec::xml_can_carry(*c))
                .collect::<String>()
                .replace("\r\n", "\n")
                .replace('\r', "\n")
        } else {
            String::new()
        },
        children: e.children.iter().map(normalised).collect(),
    }
}
