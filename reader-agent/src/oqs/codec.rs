//! The bytes of an `XmlMsg` file and back, with no I/O: the encoding named by the XML
//! declaration (CP932 under the label `Shift_JIS`, or UTF-8), a small element tree read with
//! quick-xml, and the writer of answers.
//!
//! Windows reception software writes CP932 (Windows-31J) and calls it Shift_JIS; encoding_rs's
//! `SHIFT_JIS` is exactly that (the WHATWG definition: JIS X 0208 plus the NEC and IBM
//! extensions), so 髙, ①, ～ survive a round trip. A character CP932 cannot hold is written as
//! [`REPLACEMENT`] and counted (an assumption: the real terminal's rule is not public).

use std::borrow::Cow;

use quick_xml::events::Event;
use quick_xml::Reader;

/// Written in place of a character CP932 cannot hold: 〓 (げた記号), the substitute mark of
/// Japanese systems. An assumption (docs/oqs-files.md).
pub const REPLACEMENT: char = '\u{3013}';

/// Request files larger than this are refused unread (a bulk request of 10,000 queries is about
/// 4 MB).
pub const MAX_FILE_BYTES: usize = 32 * 1024 * 1024;
/// Nesting deeper than this is refused (the real layout is at most 6 deep).
const MAX_DEPTH: usize = 32;

/// The character code of a file: `CharacterCodeIdentifier` 0 is UTF-8, 1 Shift_JIS (CP932).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Utf8,
    ShiftJis,
}

impl Charset {
    /// The value of `CharacterCodeIdentifier`.
    pub fn identifier(self) -> &'static str {
        match self {
            Charset::Utf8 => "0",
            Charset::ShiftJis => "1",
        }
    }

    pub fn from_identifier(s: &str) -> Option<Charset> {
        match s.trim() {
            "0" => Some(Charset::Utf8),
            "1" => Some(Charset::ShiftJis),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::ShiftJis => "Shift_JIS",
        }
    }
}

/// Why a request file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("the file is {size} bytes, over the limit of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("the XML declaration names the encoding {0:?}, which is neither Shift_JIS nor UTF-8")]
    UnsupportedEncoding(String),
    #[error(
        "the bytes are not valid {charset} (the encoding the declaration names) at byte {offset}"
    )]
    WrongEncoding {
        charset: &'static str,
        offset: usize,
    },
    /// The document ends before its root element closes: perhaps still being written.
    #[error("the XML ends before the document is complete")]
    Incomplete,
    #[error("the XML is not well-formed: {0}")]
    Malformed(String),
}

/// One element: its name, its text (concatenated, entities resolved) and its child elements.
/// Attributes are not used by the layout and are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn new(name: &str) -> Self {
        Element {
            name: name.to_owned(),
            ..Default::default()
        }
    }

    /// A leaf with text.
    pub fn leaf(name: &str, text: impl Into<String>) -> Self {
        Element {
            name: name.to_owned(),
            text: text.into(),
            children: Vec::new(),
        }
    }

    /// Adds a child.
    pub fn push(&mut self, child: Element) -> &mut Self {
        self.children.push(child);
        self
    }

    /// Adds a leaf.
    pub fn put(&mut self, name: &str, text: impl Into<String>) -> &mut Self {
        self.push(Element::leaf(name, text))
    }

    /// Adds a leaf only when the text is not empty: the real files omit absent elements rather
    /// than leaving them empty.
    pub fn put_some(&mut self, name: &str, text: &str) -> &mut Self {
        if !text.is_empty() {
            self.put(name, text);
        }
        self
    }

    /// The first child of that name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child of that name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of the first child of that name, if present and not blank.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.trim())
            .filter(|t| !t.is_empty())
    }
}

/// Decodes a request file by its declaration (absent: UTF-8; a UTF-8 BOM is dropped).
pub fn decode(bytes: &[u8]) -> Result<(String, Charset), CodecError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(CodecError::TooLarge {
            size: bytes.len(),
            max: MAX_FILE_BYTES,
        });
    }
    let (bytes, had_bom) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (rest, true),
        None => (bytes, false),
    };
    let charset = match declared_encoding(bytes) {
        None => Charset::Utf8,
        Some(label) => {
            let l = label.to_ascii_lowercase();
            match l.as_str() {
                "utf-8" | "utf8" => Charset::Utf8,
                "shift_jis" | "shift-jis" | "sjis" | "x-sjis" | "windows-31j" | "cp932"
                | "ms932" | "ms_kanji" | "csshiftjis" => Charset::ShiftJis,
                _ => return Err(CodecError::UnsupportedEncoding(label)),
            }
        }
    };
    if had_bom && charset != Charset::Utf8 {
        return Err(CodecError::WrongEncoding {
            charset: charset.label(),
            offset: 0,
        });
    }
    let text = match charset {
        Charset::Utf8 => match std::str::from_utf8(bytes) {
            Ok(s) => s.to_owned(),
            Err(e) => {
                return Err(CodecError::WrongEncoding {
                    charset: "UTF-8",
                    offset: e.valid_up_to(),
                })
            }
        },
        Charset::ShiftJis => {
            let mut decoder = encoding_rs::SHIFT_JIS.new_decoder_without_bom_handling();
            let mut out = String::with_capacity(bytes.len() * 3 / 2 + 16);
            let mut read_total = 0;
            loop {
                let (result, read) = decoder.decode_to_string_without_replacement(
                    &bytes[read_total..],
                    &mut out,
                    true,
                );
                read_total += read;
                match result {
                    encoding_rs::DecoderResult::InputEmpty => break,
                    encoding_rs::DecoderResult::OutputFull => {
                        out.reserve(bytes.len() - read_total + 16);
                    }
                    encoding_rs::DecoderResult::Malformed(bad, _) => {
                        return Err(CodecError::WrongEncoding {
                            charset: "Shift_JIS",
                            offset: read_total.saturating_sub(usize::from(bad)),
                        });
                    }
                }
            }
            out
        }
    };
    Ok((text, charset))
}

/// The `encoding="…"` of the XML declaration, read as ASCII (both encodings agree there).
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let head = bytes.get(..bytes.len().min(256))?;
    if !head.starts_with(b"<?xml") {
        return None;
    }
    let end = head.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&head[..end]).ok()?;
    let at = decl.find("encoding")?;
    let rest = decl[at + "encoding".len()..].trim_start();
    let rest = rest.strip_prefix('=')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    let close = value.find(quote)?;
    Some(value[..close].to_owned())
}

/// An XML 1.0 `Name`, simplified: a letter, `_`, `:` or a non-ASCII character first, then
/// those, digits, `-` and `.`. (Every name of the layout is ASCII.)
fn is_xml_name(name: &str) -> bool {
    let start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':' || !c.is_ascii();
    let mut chars = name.chars();
    chars.next().is_some_and(start)
        && chars.all(|c| start(c) || c.is_ascii_digit() || c == '-' || c == '.')
}

/// Parses decoded text into its root element.
pub fn parse(text: &str) -> Result<Element, CodecError> {
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(|e| malformed(&e, &stack))?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(CodecError::Malformed(
                        "content after the root element".into(),
                    ));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(CodecError::Malformed(format!(
                        "elements nested deeper than {MAX_DEPTH}"
                    )));
                }
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                if !is_xml_name(&name) {
                    // The parser takes a tag's name up to the first blank: `<x/` followed by
                    // a line break names an element `x/`, which no writer can close.
                    return Err(CodecError::Malformed(format!(
                        "{name:?} is not an XML element name"
                    )));
                }
                stack.push(Element::new(&name));
            }
            Event::End(_) => {
                let Some(mut done) = stack.pop() else {
                    return Err(CodecError::Malformed("an end tag without a start".into()));
                };
                // The indentation between child elements is not content.
                if !done.children.is_empty() && done.text.trim().is_empty() {
                    done.text.clear();
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(t) => {
                let s = t
                    .decode()
                    .map_err(|e| CodecError::Malformed(e.to_string()))?;
                push_text(&mut stack, &root, &s)?;
            }
            Event::CData(c) => {
                let s = c
                    .decode()
                    .map_err(|e| CodecError::Malformed(e.to_string()))?;
                push_text(&mut stack, &root, &s)?;
            }
            Event::GeneralRef(r) => {
                let resolved: Cow<'_, str> = match r.resolve_char_ref() {
                    Ok(Some(c)) => Cow::Owned(c.to_string()),
                    Ok(None) => {
                        let name = r
                            .decode()
                            .map_err(|e| CodecError::Malformed(e.to_string()))?;
                        match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(s) => Cow::Borrowed(s),
                            None => {
                                return Err(CodecError::Malformed(format!(
                                    "unknown entity &{name};"
                                )))
                            }
                        }
                    }
                    Err(e) => return Err(CodecError::Malformed(e.to_string())),
                };
                push_text(&mut stack, &root, &resolved)?;
            }
            Event::Eof => break,
            Event::DocType(_) => {
                // No DTD is ever needed; one could declare entities, so it is refused.
                return Err(CodecError::Malformed("a DOCTYPE is not accepted".into()));
            }
            Event::Empty(_) | Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    match (root, stack.is_empty()) {
        (Some(root), true) => Ok(root),
        _ => Err(CodecError::Incomplete),
    }
}

fn push_text(stack: &mut [Element], root: &Option<Element>, s: &str) -> Result<(), CodecError> {
    match stack.last_mut() {
        Some(e) => {
            e.text.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None if root.is_some() => Err(CodecError::Malformed("text after the root element".into())),
        None => Err(CodecError::Malformed("text before the root element".into())),
    }
}

fn malformed(e: &quick_xml::Error, stack: &[Element]) -> CodecError {
    use quick_xml::errors::{Error, SyntaxError};
    match e {
        // A document cut short (still being written) ends inside a tag or an open element.
        Error::Syntax(
            SyntaxError::UnclosedTag
            | SyntaxError::UnclosedPIOrXmlDecl
            | SyntaxError::UnclosedComment
            | SyntaxError::UnclosedCData
            | SyntaxError::UnclosedDoctype,
        ) => CodecError::Incomplete,
        Error::IllFormed(quick_xml::errors::IllFormedError::MissingEndTag(_))
            if !stack.is_empty() =>
        {
            CodecError::Incomplete
        }
        other => CodecError::Malformed(other.to_string()),
    }
}

/// Decodes and parses in one step.
pub fn read(bytes: &[u8]) -> Result<(Element, Charset), CodecError> {
    let (text, charset) = decode(bytes)?;
    Ok((parse(&text)?, charset))
}

/// An encoded answer and how many characters had to be replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub replaced: usize,
}

/// Writes a document: the declaration the real files carry, then the elements indented by two
/// spaces with CRLF line ends (Windows software reads them; XML parsers ignore the spacing).
pub fn write(root: &Element, charset: Charset) -> Encoded {
    let mut text = format!(
        "<?xml version=\"1.0\" encoding=\"{}\" standalone=\"no\"?>\r\n",
        charset.label()
    );
    write_element(&mut text, root, 0);
    encode(&text, charset)
}

fn write_element(out: &mut String, e: &Element, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
    out.push('<');
    out.push_str(&e.name);
    out.push('>');
    if e.children.is_empty() {
        out.push_str(&escape_text(&e.text));
    } else {
        out.push_str("\r\n");
        for c in &e.children {
            write_element(out, c, depth + 1);
        }
        for _ in 0..depth {
            out.push_str("  ");
        }
    }
    out.push_str("</");
    out.push_str(&e.name);
    out.push_str(">\r\n");
}

/// Whether XML 1.0 can carry `c` at all: not the controls other than tab, CR and LF, nor
/// U+FFFE and U+FFFF. The writer drops the others.
pub fn xml_can_carry(c: char) -> bool {
    !((c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{fffe}' || c == '\u{ffff}')
}

/// Escapes text content; characters XML 1.0 cannot carry at all are dropped.
fn escape_text(s: &str) -> Cow<'_, str> {
    let clean: Cow<'_, str> = if !s.chars().all(xml_can_carry) {
        Cow::Owned(s.chars().filter(|c| xml_can_carry(*c)).collect())
    } else {
        Cow::Borrowed(s)
    };
    match quick_xml::escape::escape(clean.as_ref()) {
        Cow::Borrowed(_) => clean,
        Cow::Owned(o) => Cow::Owned(o),
    }
}

/// Encodes text, replacing what the charset cannot hold by [`REPLACEMENT`].
pub fn encode(text: &str, charset: Charset) -> Encoded {
    match charset {
        Charset::Utf8 => Encoded {
            bytes: text.as_bytes().to_vec(),
            replaced: 0,
        },
        Charset::ShiftJis => {
            let mut encoder = encoding_rs::SHIFT_JIS.new_encoder();
            let mut out: Vec<u8> = Vec::with_capacity(text.len() + 16);
            let mut rest = text;
            let mut replaced = 0;
            loop {
                let room = encoder
                    .max_buffer_length_from_utf8_without_replacement(rest.len())
                    .unwrap_or(rest.len() * 2 + 16);
                out.reserve(room);
                let (result, read) =
                    encoder.encode_from_utf8_to_vec_without_replacement(rest, &mut out, true);
                rest = &rest[read..];
                match result {
                    encoding_rs::EncoderResult::InputEmpty => break,
                    encoding_rs::EncoderResult::OutputFull => {}
                    encoding_rs::EncoderResult::Unmappable(_) => {
                        replaced += 1;
                        out.extend_from_slice(&[0x81, 0xAC]); // 〓 in Shift_JIS
                    }
                }
            }
            Encoded {
                bytes: out,
                replaced,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sjis(s: &str) -> Vec<u8> {
        let (b, _, bad) = encoding_rs::SHIFT_JIS.encode(s);
        assert!(!bad, "{s} is not CP932");
        b.into_owned()
    }

    #[test]
    fn cp932_extension_characters_and_half_width_kana_round_trip() {
        let mut root = Element::new("XmlMsg");
        root.put("Name", "髙橋 ①～㈱ ｱｲｳｴｵﾞ <&>\"'");
        let enc = write(&root, Charset::ShiftJis);
        assert_eq!(enc.replaced, 0);
        // 髙 is an IBM extension (FB FC), ① NEC row 13 (87 40), ～ the full-width tilde (81 60).
        for probe in [&[0xFB, 0xFC][..], &[0x87, 0x40], &[0x81, 0x60], &[0xB1]] {
            assert!(
                enc.bytes.windows(probe.len()).any(|w| w == probe),
                "{probe:02x?}"
            );
        }
        let (back, charset) = read(&enc.bytes).unwrap();
        assert_eq!(charset, Charset::ShiftJis);
        assert_eq!(back, root);
    }

    #[test]
    fn a_character_cp932_lacks_is_replaced_and_counted() {
        let mut root = Element::new("A");
        root.put("B", "𠮷野家 😀");
        let enc = write(&root, Charset::ShiftJis);
        assert_eq!(enc.replaced, 2);
        let (back, _) = read(&enc.bytes).unwrap();
        assert_eq!(back.text_of("B"), Some("〓野家 〓"));
        // UTF-8 holds them.
        let enc = write(&root, Charset::Utf8);
        assert_eq!(enc.replaced, 0);
        assert_eq!(read(&enc.bytes).unwrap().0, root);
    }

    #[test]
    fn the_declaration_decides_the_encoding() {
        let body = "<A><B>資格</B></A>";
        let mut s = b"<?xml version=\"1.0\" encoding=\"Shift_JIS\" standalone=\"no\"?>".to_vec();
        s.extend(sjis(body));
        assert_eq!(read(&s).unwrap().0.text_of("B"), Some("資格"));
        // UTF-8 bytes under a Shift_JIS label are refused, not misread.
        let mut wrong = b"<?xml version=\"1.0\" encoding=\"Shift_JIS\"?>".to_vec();
        wrong.extend("<A><B>\u{8cc7}\u{683c}\u{fffd}</B></A>".as_bytes());
        assert!(matches!(
            decode(&wrong),
            Err(CodecError::WrongEncoding { .. })
        ));
        // Shift_JIS bytes under a UTF-8 label (or none) are refused.
        let mut wrong = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>".to_vec();
        wrong.extend(sjis(body));
        assert!(matches!(
            decode(&wrong),
            Err(CodecError::WrongEncoding {
                charset: "UTF-8",
                ..
            })
        ));
        assert!(matches!(
            decode(b"<?xml version=\"1.0\" encoding=\"EUC-JP\"?><A/>"),
            Err(CodecError::UnsupportedEncoding(_))
        ));
        let plain = "\u{feff}<A><B>x</B></A>".as_bytes();
        assert_eq!(read(plain).unwrap().1, Charset::Utf8);
    }

    #[test]
    fn bad_xml_is_malformed_and_a_cut_document_is_incomplete() {
        for bad in [
            "<A><B></A>",
            "<A>x</A><C/>",
            "text",
            "<A>&foo;</A>",
            "<!DOCTYPE A [<!ENTITY x 'y'>]><A>&x;</A>",
        ] {
            assert!(
                matches!(parse(bad), Err(CodecError::Malformed(_))),
                "{bad}: {:?}",
                parse(bad)
            );
        }
        let full = "<?xml version=\"1.0\"?><A><B>1</B><C>2</C></A>";
        for cut in 0..full.len() {
            match parse(&full[..cut]) {
                Err(CodecError::Incomplete) | Err(CodecError::Malformed(_)) => {}
                Ok(e) => panic!("{cut}: a cut document parsed: {e:?}"),
                Err(e) => panic!("{cut}: {e:?}"),
            }
        }
        assert!(matches!(parse("<A><B>1</B>"), Err(CodecError::Incomplete)));
        assert!(parse(full).is_ok());
        let deep = "<a>".repeat(40);
        assert!(parse(&deep).is_err());
    }
}
