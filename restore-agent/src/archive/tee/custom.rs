//! Custom archives (pg_backup_custom.c): the header and TOC, buffered until
//! they parse, then data blocks: a block type byte (`BLK_DATA` 1,
//! `BLK_BLOBS` 3) and the entry's dump id; `BLK_DATA` is followed by
//! length-prefixed chunks of the (compressed) data up to a zero length,
//! `BLK_BLOBS` by `<oid> <chunks...> 0` per large object up to a zero OID.

use super::{ArchiveProgress, Mode, TOC_CAP};
use crate::archive::ArchiveError;
use crate::archive::rows::RowCounter;
use crate::archive::toc::read_header_and_toc;
use crate::format::Format;

pub(super) enum Custom {
    BlockType,
    Int { acc: IntAcc, then: AfterInt },
    Chunk { left: u64, blob: bool },
}

#[derive(Clone, Copy)]
pub(super) enum AfterInt {
    BlockId { blob: bool },
    DataLen,
    BlobOid,
    BlobLen,
}

/// Accumulates a pg_dump int (sign byte + `int_size` bytes, least significant first).
pub(super) struct IntAcc {
    need: usize,
    got: usize,
    sign: bool,
    value: i64,
}

impl IntAcc {
    fn new(int_size: usize) -> IntAcc {
        IntAcc { need: 1 + int_size, got: 0, sign: false, value: 0 }
    }

    /// Takes bytes from `b`; returns the value once complete.
    fn feed(&mut self, b: &mut &[u8]) -> Option<i64> {
        while self.got < self.need {
            let (&first, rest) = b.split_first()?;
            *b = rest;
            if self.got == 0 {
                self.sign = first != 0;
            } else if self.got <= 8 {
                self.value |= (first as i64) << (8 * (self.got - 1));
            }
            self.got += 1;
        }
        Some(if self.sign { -self.value } else { self.value })
    }
}

impl ArchiveProgress<'_> {
    pub(super) fn step_custom_toc(&mut self, b: &mut &[u8]) {
        let bytes = std::mem::take(b);
        self.custom_toc_bytes(bytes);
    }

    /// Adds bytes to the buffered header and TOC; parses them once there is
    /// twice as much as at the last attempt (linear work overall).
    pub(super) fn custom_toc_bytes(&mut self, bytes: &[u8]) {
        let Mode::CustomToc { buf, next_try } = &mut self.mode else { return };
        buf.extend_from_slice(bytes);
        if buf.len() > TOC_CAP {
            return self.stop();
        }
        if buf.len() < *next_try {
            return;
        }
        let buf = std::mem::take(buf);
        self.try_custom_toc(buf, false);
    }

    /// Parses a custom archive's header and TOC from `buf`; on success
    /// follows the data blocks in the bytes after the TOC.
    pub(super) fn try_custom_toc(&mut self, buf: Vec<u8>, last: bool) {
        let mut slice: &[u8] = &buf;
        match read_header_and_toc(&mut slice) {
            Ok((header, toc)) => {
                let consumed = buf.len() - slice.len();
                self.int_size = header.int_size as usize;
                self.compression = header.compression_algorithm;
                self.learn_toc(&toc, Format::Custom);
                self.mode = Mode::Custom(Custom::BlockType);
                let mut rest = &buf[consumed..];
                while !rest.is_empty() && matches!(self.mode, Mode::Custom(_)) {
                    let before = rest.len();
                    self.step_custom(&mut rest);
                    if rest.len() == before {
                        self.stop();
                    }
                }
            }
            Err(ArchiveError::Truncated(_)) if !last => {
                let next_try = buf.len().saturating_mul(2).max(4096);
                self.mode = Mode::CustomToc { buf, next_try };
            }
            Err(_) => self.stop(),
        }
    }

    pub(super) fn step_custom(&mut self, b: &mut &[u8]) {
        let Mode::Custom(state) = std::mem::replace(&mut self.mode, Mode::Stopped) else {
            return;
        };
        let int_size = self.int_size;
        let int = move |then| Custom::Int { acc: IntAcc::new(int_size), then };
        let next = match state {
            Custom::BlockType => {
                let Some((&t, rest)) = b.split_first() else {
                    self.mode = Mode::Custom(Custom::BlockType);
                    return;
                };
                *b = rest;
                match t {
                    1 => int(AfterInt::BlockId { blob: false }),
                    3 => int(AfterInt::BlockId { blob: true }),
                    _ => return self.stop(),
                }
            }
            Custom::Int { mut acc, then } => {
                let Some(v) = acc.feed(b) else {
                    self.mode = Mode::Custom(Custom::Int { acc, then });
                    return;
                };
                match then {
                    AfterInt::BlockId { blob } => {
                        let Ok(id) = i32::try_from(v) else { return self.stop() };
                        if !self.enter_entry(id, self.compression) {
                            return self.stop();
                        }
                        if blob {
                            self.rows = RowCounter::Off;
                            int(AfterInt::BlobOid)
                        } else {
                            int(AfterInt::DataLen)
                        }
                    }
                    AfterInt::DataLen if v == 0 => {
                        self.rows = RowCounter::Off;
                        Custom::BlockType
                    }
                    AfterInt::DataLen if v > 0 => Custom::Chunk { left: v as u64, blob: false },
                    AfterInt::BlobOid if v == 0 => Custom::BlockType,
                    AfterInt::BlobOid if v > 0 => {
                        self.enter_large_object(&v.to_string());
                        int(AfterInt::BlobLen)
                    }
                    AfterInt::BlobLen if v == 0 => int(AfterInt::BlobOid),
                    AfterInt::BlobLen if v > 0 => Custom::Chunk { left: v as u64, blob: true },
                    _ => return self.stop(),
                }
            }
            Custom::Chunk { left, blob } => {
                let n = left.min(b.len() as u64) as usize;
                if !blob {
                    self.rows.feed(&b[..n], self.obs);
                }
                *b = &b[n..];
                let left = left - n as u64;
                if left > 0 {
                    Custom::Chunk { left, blob }
                } else {
                    int(if blob { AfterInt::BlobLen } else { AfterInt::DataLen })
                }
            }
        };
        self.mode = Mode::Custom(next);
    }
}
