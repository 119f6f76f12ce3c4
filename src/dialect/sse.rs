//! An incremental Server-Sent Events decoder following the WHATWG HTML "event stream"
//! interpretation rules: UTF-8, optional BOM, lines ended by CRLF, LF or CR (also when a CRLF
//! is split across reads), `data:` lines joined with `\n`, one optional space after the colon,
//! comments (`:`) ignored, events dispatched on a blank line.
//!
//! Differences from a browser, on purpose: invalid UTF-8 is an error (a provider sending it is
//! a failure class, not something to paper over with U+FFFD), and [`SseDecoder::finish`]
//! dispatches a last event that lacks its closing blank line (and says so), because some
//! servers end that way and the answer is still the answer.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("invalid UTF-8 in the event stream")]
    InvalidUtf8,
}

#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    started: bool,
    after_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    /// Comment lines seen (keep-alives).
    pub comments: u64,
    /// True when `finish` had to dispatch an unterminated event.
    pub unterminated_tail: bool,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes; complete events are pushed to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if !self.started && !bytes.is_empty() {
            // BOM may be split across reads: buffer until we can decide
            self.line.extend_from_slice(bytes);
            if self.line.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.line) {
                return Ok(());
            }
            self.started = true;
            let buf = std::mem::take(&mut self.line);
            let rest = buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&buf);
            return self.feed_body(rest, out);
        }
        if bytes.is_empty() {
            return Ok(());
        }
        if self.after_cr && bytes[0] == b'\n' {
            bytes = &bytes[1..];
        }
        self.after_cr = false;
        self.feed_body(bytes, out)
    }

    fn feed_body(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i..].iter().position(|b| *b == b'\n' || *b == b'\r') {
                None => {
                    self.line.extend_from_slice(&bytes[i..]);
                    break;
                }
                Some(p) => {
                    self.line.extend_from_slice(&bytes[i..i + p]);
                    let term = bytes[i + p];
                    i += p + 1;
                    if term == b'\r' {
                        if i < bytes.len() {
                            if bytes[i] == b'\n' {
                                i += 1;
                            }
                        } else {
                            self.after_cr = true;
                        }
                    }
                    let line = std::mem::take(&mut self.line);
                    self.process_line(&line, out)?;
                }
            }
        }
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::InvalidUtf8)?;
        if line.starts_with(':') {
            self.comments += 1;
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {} // retry and unknown fields are ignored
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
                id: self.id.clone(),
            });
        }
        self.event = None;
        self.data.clear();
        self.has_data = false;
    }

    /// End of stream: process a pending line and dispatch a pending event.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            if !self.started {
                self.started = true;
            }
            self.process_line(&line, out)?;
        }
        if self.has_data {
            self.unterminated_tail = true;
            self.dispatch(out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for c in input.chunks(piece.max(1)) {
            d.feed(c, &mut out).unwrap();
        }
        d.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn line_endings_bom_multiline_comments_and_splits() {
        let input = "\u{FEFF}: keep-alive\r\ndata: {\"a\":1}\r\n\r\nevent: ping\rdata: x\rdata:y\r\rdata: é€\n\ndata: tail";
        let want = vec![
            SseEvent {
                event: None,
                data: "{\"a\":1}".into(),
                id: None,
            },
            SseEvent {
                event: Some("ping".into()),
                data: "x\ny".into(),
                id: None,
            },
            SseEvent {
                event: None,
                data: "é€".into(),
                id: None,
            },
            SseEvent {
                event: None,
                data: "tail".into(),
                id: None,
            },
        ];
        for piece in 1..=input.len() {
            assert_eq!(
                decode_in_pieces(input.as_bytes(), piece),
                want,
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn invalid_utf8_is_an_error_not_a_panic() {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        assert_eq!(
            d.feed(b"data: \xff\xfe\n\n", &mut out),
            Err(SseError::InvalidUtf8)
        );
    }

    #[test]
    fn empty_data_events_and_no_data_blocks() {
        let out = decode_in_pieces(b"event: x\n\ndata\n\n", 3);
        assert_eq!(
            out,
            vec![SseEvent {
                event: None,
                data: "".into(),
                id: None
            }]
        );
    }
}
