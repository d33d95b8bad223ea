//! Tar archives (pg_backup_tar.c): 512-byte headers, `toc.dat` first, then
//! a member per data entry (`3338.dat`) or large object (`blob_<oid>.dat`).

use super::{ArchiveProgress, Mode, TOC_CAP};
use crate::archive::header::ArchiveCompression;
use crate::archive::rows::RowCounter;
use crate::archive::tar_header::{TAR_BLOCK, tar_checksum, tar_number};
use crate::archive::toc::read_header_and_toc;
use crate::format::Format;

pub(super) enum Tar {
    Header { buf: Box<[u8; TAR_BLOCK]>, got: usize },
    Content { left: u64, pad: u64, member: Member },
    Padding { left: u64 },
}

pub(super) enum Member {
    Toc(Vec<u8>),
    Data { rows: bool },
    Other,
}

impl ArchiveProgress<'_> {
    pub(super) fn step_tar(&mut self, b: &mut &[u8]) {
        let Mode::Tar(state) = std::mem::replace(&mut self.mode, Mode::Stopped) else {
            return;
        };
        let next = match state {
            Tar::Header { mut buf, got } => {
                let take = (TAR_BLOCK - got).min(b.len());
                buf[got..got + take].copy_from_slice(&b[..take]);
                *b = &b[take..];
                if got + take < TAR_BLOCK {
                    Tar::Header { buf, got: got + take }
                } else {
                    match self.tar_member(&buf, self.pos + take as u64) {
                        Some(next) => next,
                        None => return,
                    }
                }
            }
            Tar::Content { left, pad, mut member } => {
                let n = left.min(b.len() as u64) as usize;
                match &mut member {
                    Member::Toc(buf) => buf.extend_from_slice(&b[..n]),
                    Member::Data { rows: true } => self.rows.feed(&b[..n], self.obs),
                    _ => {}
                }
                *b = &b[n..];
                let left = left - n as u64;
                if left > 0 {
                    Tar::Content { left, pad, member }
                } else if self.end_member(member) {
                    padding(pad)
                } else {
                    return;
                }
            }
            Tar::Padding { left } => {
                let n = left.min(b.len() as u64) as usize;
                *b = &b[n..];
                padding(left - n as u64)
            }
        };
        self.mode = Mode::Tar(next);
    }

    /// A member's content ended; false when the tee stopped.
    fn end_member(&mut self, member: Member) -> bool {
        match member {
            Member::Toc(buf) => {
                let Ok((header, toc)) = read_header_and_toc(&mut &buf[..]) else {
                    self.stop();
                    return false;
                };
                self.int_size = header.int_size as usize;
                self.compression = header.compression_algorithm;
                self.learn_toc(&toc, Format::Tar);
            }
            Member::Data { .. } => self.rows = RowCounter::Off,
            Member::Other => {}
        }
        true
    }

    /// Interprets a complete tar header whose content starts at stream
    /// offset `content_start`; `None` when the tee stopped or the archive ended.
    pub(super) fn tar_member(&mut self, h: &[u8; TAR_BLOCK], content_start: u64) -> Option<Tar> {
        if h.iter().all(|&c| c == 0) {
            self.mode = Mode::Done;
            return None;
        }
        let size = tar_number(&h[124..136]);
        if size.is_none() || tar_number(&h[148..156]) != Some(tar_checksum(h)) {
            self.stop();
            return None;
        }
        let size = size.unwrap_or(0);
        let end = h[..100].iter().position(|&c| c == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&h[..end]).into_owned();
        let pad = (TAR_BLOCK as u64 - size % TAR_BLOCK as u64) % TAR_BLOCK as u64;
        let member = if name == "toc.dat" {
            if size > TOC_CAP as u64 {
                self.stop();
                return None;
            }
            Member::Toc(Vec::with_capacity(size as usize))
        } else if let Some(&id) = self.by_file.get(&name) {
            self.hold_from = Some((content_start + size).saturating_sub(1));
            // Tar members are never compressed (pg_backup_tar.c refuses it).
            self.enter_entry(id, ArchiveCompression::None);
            Member::Data { rows: matches!(self.rows, RowCounter::Counting { .. }) && !name.ends_with(".gz") }
        } else if let Some(oid) =
            name.strip_prefix("blob_").and_then(|r| r.split('.').next()).filter(|o| o.parse::<u32>().is_ok())
        {
            self.hold_from = Some((content_start + size).saturating_sub(1));
            self.enter_large_object(oid);
            Member::Data { rows: false }
        } else {
            Member::Other
        };
        if size == 0 {
            return self.end_member(member).then(|| padding(pad));
        }
        Some(Tar::Content { left: size, pad, member })
    }
}

fn padding(left: u64) -> Tar {
    if left > 0 { Tar::Padding { left } } else { Tar::Header { buf: Box::new([0; TAR_BLOCK]), got: 0 } }
}
