//! Server-sent events, client side: splits a byte stream into messages (`event:` and
//! `data:` fields); comments (keep-alives) are dropped, an oversized message is dropped.

/// Largest unfinished SSE message kept (a bigger one is dropped).
const MAX_PENDING: usize = 1 << 20;

/// One message of a server-sent event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseMessage {
    /// `event:` (None for the default type).
    pub event: Option<String>,
    /// The `data:` lines joined with newlines.
    pub data: String,
}

/// Splits a byte stream into SSE messages; comments (keep-alives) are dropped.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
}

impl SseParser {
    /// Takes more bytes; returns the messages they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseMessage> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = find_blank_line(&self.buf) {
            let block: Vec<u8> = self.buf.drain(..end.1).collect();
            let text = String::from_utf8_lossy(block.get(..end.0).unwrap_or_default());
            let mut msg = SseMessage {
                event: None,
                data: String::new(),
            };
            let mut has_data = false;
            for line in text.lines() {
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => msg.event = Some(value.to_string()),
                    "data" => {
                        if has_data {
                            msg.data.push('\n');
                        }
                        msg.data.push_str(value);
                        has_data = true;
                    }
                    _ => {}
                }
            }
            if has_data {
                out.push(msg);
            }
        }
        if self.buf.len() > MAX_PENDING {
            self.buf.clear();
        }
        out
    }
}

/// The end of the first message: (where its text ends, where the next one begins).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_across_chunks_and_comments_are_dropped() {
        let mut p = SseParser::default();
        assert!(p.push(b": bootd events\n\n").is_empty());
        assert!(p.push(b"data: {\"a\":").is_empty());
        let got = p.push(b"1}\n\nevent: lagged\ndata: {\"missed\":3}\n\n: keep-alive\n\n");
        assert_eq!(
            got,
            vec![
                SseMessage {
                    event: None,
                    data: "{\"a\":1}".into()
                },
                SseMessage {
                    event: Some("lagged".into()),
                    data: "{\"missed\":3}".into()
                },
            ]
        );
        let crlf = p.push(b"data: x\r\n\r\n");
        assert_eq!(crlf.len(), 1);
        assert_eq!(crlf[0].data, "x");
    }

    #[test]
    fn an_endless_message_is_dropped_not_kept() {
        let mut p = SseParser::default();
        let big = vec![b'a'; MAX_PENDING + 1];
        assert!(p.push(&big).is_empty());
        assert_eq!(p.push(b"data: ok\n\n").len(), 1);
    }
}
