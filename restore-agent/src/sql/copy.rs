//! The data of a `COPY ... FROM stdin` block: streamed in chunks straight from
//! the reader's buffer until the line that is exactly `\.` (or `\.\r`).
//!
//! Lines are found with `memchr`; only the start of each line is looked at,
//! so the data moves at memory speed. A terminator split across two reads is
//! carried over in a few bytes.

use std::io::{BufRead, ErrorKind};

use bytes::{Bytes, BytesMut};
use memchr::memchr;

use super::SplitError;

/// Target size of a `CopyData` chunk.
pub(super) const CHUNK: usize = 128 * 1024;

const END_LF: &[u8] = b"\\.\n";
const END_CRLF: &[u8] = b"\\.\r\n";

/// One step of a COPY block.
#[derive(Debug)]
pub(super) enum Step {
    /// A full chunk of data.
    Data(Bytes),
    /// The terminator line was read: the last (possibly empty) chunk, the
    /// number of data lines, and the number of lines consumed in all
    /// (data lines plus the terminator).
    End { last: Bytes, rows: u64, lines: u64 },
}

/// The state of one COPY block.
#[derive(Debug)]
pub(super) struct CopyIn {
    /// Dump line of the COPY statement (for the truncation error).
    line: u64,
    rows: u64,
    at_line_start: bool,
    /// The start of a line that may be the terminator, split across reads.
    carry: Vec<u8>,
    chunk: BytesMut,
}

/// How a line start compares with the terminator.
enum LineStart {
    Terminator(usize),
    /// Could still become the terminator with more bytes.
    Prefix,
    Data,
}

fn line_start(rest: &[u8]) -> LineStart {
    if rest.first() != Some(&b'\\') {
        LineStart::Data
    } else if rest.starts_with(END_LF) {
        LineStart::Terminator(END_LF.len())
    } else if rest.starts_with(END_CRLF) {
        LineStart::Terminator(END_CRLF.len())
    } else if END_LF.starts_with(rest) || END_CRLF.starts_with(rest) {
        LineStart::Prefix
    } else {
        LineStart::Data
    }
}

impl CopyIn {
    pub fn new(line: u64) -> Self {
        CopyIn {
            line,
            rows: 0,
            at_line_start: true,
            carry: Vec::with_capacity(4),
            chunk: BytesMut::with_capacity(CHUNK),
        }
    }

    fn take_chunk(&mut self) -> Bytes {
        let data = self.chunk.split().freeze();
        self.chunk.reserve(CHUNK);
        data
    }

    fn end(&mut self) -> Step {
        Step::End { last: self.chunk.split().freeze(), rows: self.rows, lines: self.rows + 1 }
    }

    /// Read until a chunk is full or the block ends.
    pub fn step<R: BufRead>(&mut self, r: &mut R) -> Result<Step, SplitError> {
        loop {
            if self.chunk.len() >= CHUNK {
                return Ok(Step::Data(self.take_chunk()));
            }
            let buf = match r.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if buf.is_empty() {
                // A final `\.` without a newline still ends the data.
                if self.carry == b"\\." {
                    self.carry.clear();
                    return Ok(self.end());
                }
                return Err(SplitError::TruncatedCopy { line: self.line });
            }

            if !self.carry.is_empty() {
                self.carry.push(buf[0]);
                r.consume(1);
                match line_start(&self.carry) {
                    LineStart::Terminator(_) => {
                        self.carry.clear();
                        return Ok(self.end());
                    }
                    LineStart::Prefix => {}
                    LineStart::Data => {
                        // Only the byte just added can be a newline.
                        self.at_line_start = self.carry.last() == Some(&b'\n');
                        if self.at_line_start {
                            self.rows += 1;
                        }
                        self.chunk.extend_from_slice(&self.carry);
                        self.carry.clear();
                    }
                }
                continue;
            }

            let limit = buf.len().min(CHUNK - self.chunk.len());
            let mut pos = 0;
            loop {
                if self.at_line_start {
                    match line_start(&buf[pos..]) {
                        LineStart::Data => {}
                        LineStart::Terminator(len) => {
                            self.chunk.extend_from_slice(&buf[..pos]);
                            r.consume(pos + len);
                            return Ok(self.end());
                        }
                        LineStart::Prefix => {
                            // `buf[pos..]` is all of `\`, `\.` or `\.\r`.
                            self.chunk.extend_from_slice(&buf[..pos]);
                            self.carry.extend_from_slice(&buf[pos..]);
                            let all = buf.len();
                            r.consume(all);
                            break;
                        }
                    }
                }
                if pos >= limit {
                    self.chunk.extend_from_slice(&buf[..pos]);
                    r.consume(pos);
                    break;
                }
                match memchr(b'\n', &buf[pos..limit]) {
                    Some(k) => {
                        pos += k + 1;
                        self.rows += 1;
                        self.at_line_start = true;
                    }
                    None => {
                        pos = limit;
                        self.at_line_start = false;
                    }
                }
            }
        }
    }
}
