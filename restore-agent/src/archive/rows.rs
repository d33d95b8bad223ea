//! Row counting for the progress tee: the lines of a table's COPY data,
//! decompressed on the fly where the archive's compression allows.

use super::header::ArchiveCompression;
use super::tee::ArchiveObserver;

/// Counts the lines of a table's COPY data as it streams (decompressing it
/// when the archive's compression allows), up to the `\.` end marker.
pub(super) enum RowCounter {
    Off,
    Counting { decoder: Decoder, lines: LineCounter, scratch: Vec<u8> },
}

pub(super) enum Decoder {
    Plain,
    Zlib(Box<flate2::Decompress>),
    Zstd(Box<zstd::stream::raw::Decoder<'static>>),
}

impl RowCounter {
    pub(super) fn start(compression: ArchiveCompression) -> RowCounter {
        let decoder = match compression {
            ArchiveCompression::None => Decoder::Plain,
            ArchiveCompression::Gzip { .. } => Decoder::Zlib(Box::new(flate2::Decompress::new(true))),
            ArchiveCompression::Zstd => match zstd::stream::raw::Decoder::new() {
                Ok(d) => Decoder::Zstd(Box::new(d)),
                Err(_) => return RowCounter::Off,
            },
            // lz4 frames are only decoded by a pull reader: no row counts.
            ArchiveCompression::Lz4 => return RowCounter::Off,
        };
        let scratch = if matches!(decoder, Decoder::Plain) { Vec::new() } else { vec![0; 64 * 1024] };
        RowCounter::Counting { decoder, lines: LineCounter::default(), scratch }
    }

    pub(super) fn feed(&mut self, mut input: &[u8], obs: &dyn ArchiveObserver) {
        let RowCounter::Counting { decoder, lines, scratch } = self else { return };
        let mut rows = 0;
        match decoder {
            Decoder::Plain => rows = lines.feed(input).0,
            Decoder::Zlib(z) => {
                while !input.is_empty() && !lines.done {
                    let (in0, out0) = (z.total_in(), z.total_out());
                    let status = z.decompress(input, scratch, flate2::FlushDecompress::None);
                    let used = (z.total_in() - in0) as usize;
                    let made = (z.total_out() - out0) as usize;
                    rows += lines.feed(&scratch[..made]).0;
                    input = &input[used..];
                    match status {
                        Ok(flate2::Status::StreamEnd) => break,
                        Ok(_) if used == 0 && made == 0 => break,
                        Ok(_) => {}
                        Err(_) => {
                            obs.rows(rows);
                            *self = RowCounter::Off;
                            return;
                        }
                    }
                }
            }
            Decoder::Zstd(z) => {
                use zstd::stream::raw::Operation;
                while !input.is_empty() && !lines.done {
                    match z.run_on_buffers(input, scratch) {
                        Ok(status) => {
                            rows += lines.feed(&scratch[..status.bytes_written]).0;
                            input = &input[status.bytes_read..];
                            if status.bytes_read == 0 && status.bytes_written == 0 {
                                break;
                            }
                        }
                        Err(_) => {
                            obs.rows(rows);
                            *self = RowCounter::Off;
                            return;
                        }
                    }
                }
            }
        }
        if rows > 0 {
            obs.rows(rows);
        }
    }
}

/// Counts newline-terminated lines (COPY rows) up to a line that is
/// exactly `\.`, across chunk boundaries.
#[derive(Debug, Default)]
pub(crate) struct LineCounter {
    /// Bytes at the start of the current line that may still be the `\.` marker (0, 1 or 2).
    marker: u8,
    /// Inside a line (not at its start).
    in_line: bool,
    /// The end marker went by.
    pub(crate) done: bool,
}

impl LineCounter {
    /// Rows completed in `b`, and the bytes used: all of `b`, or up to and
    /// including the end marker's line break.
    pub(crate) fn feed(&mut self, b: &[u8]) -> (u64, usize) {
        let mut rows = 0;
        let mut i = 0;
        while i < b.len() && !self.done {
            if !self.in_line || self.marker > 0 {
                let expected = match self.marker {
                    0 => b'\\',
                    1 => b'.',
                    _ => b'\n',
                };
                if b[i] == expected {
                    i += 1;
                    if self.marker == 2 {
                        self.done = true;
                        break;
                    }
                    self.marker += 1;
                    self.in_line = true;
                    continue;
                }
                self.marker = 0;
            }
            match memchr::memchr(b'\n', &b[i..]) {
                Some(j) => {
                    rows += 1;
                    self.in_line = false;
                    i += j + 1;
                }
                None => {
                    self.in_line = true;
                    i = b.len();
                }
            }
        }
        (rows, i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_up_to_the_end_marker_across_chunks() {
        let data = b"1\tone\n2\t\\\\x\n\\N\tthree\n\\.\n\n\n";
        for step in 1..data.len() {
            let mut c = LineCounter::default();
            let rows: u64 = data.chunks(step).map(|ch| c.feed(ch).0).sum();
            assert_eq!(rows, 3, "chunks of {step}");
            assert!(c.done);
        }
        let mut c = LineCounter::default();
        assert_eq!(c.feed(b"\\\n\\.x\nlast\n"), (3, 11));
        assert!(!c.done);
        let mut c = LineCounter::default();
        assert_eq!(c.feed(b"1\n\\.\nSELECT 1;\n"), (1, 5));
        assert!(c.done);
    }
}
