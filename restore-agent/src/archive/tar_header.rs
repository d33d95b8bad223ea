//! The parts of a tar header the progress tee reads (as pg_backup_tar.c and
//! src/port/tar.c write them).

/// Tar's block size.
pub(super) const TAR_BLOCK: usize = 512;

/// `tarChecksum`: the header's bytes summed, the checksum field counted as spaces.
pub(super) fn tar_checksum(h: &[u8; TAR_BLOCK]) -> u64 {
    let mut sum = 8 * b' ' as u64;
    for (i, &c) in h.iter().enumerate() {
        if !(148..156).contains(&i) {
            sum += c as u64;
        }
    }
    sum
}

/// `read_tar_number`: octal digits, or base-256 when the high bit is set.
pub(super) fn tar_number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|&c| c & 0x80 != 0) {
        let mut v: u64 = (field[0] & 0x3f) as u64;
        for &c in &field[1..] {
            v = v.checked_mul(256)? + c as u64;
        }
        return Some(v);
    }
    let mut v: u64 = 0;
    let mut seen = false;
    for &c in field {
        match c {
            b'0'..=b'7' => {
                v = v.checked_mul(8)? + (c - b'0') as u64;
                seen = true;
            }
            b' ' if !seen => {}
            0 | b' ' => break,
            _ => return None,
        }
    }
    seen.then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_numbers_are_octal_or_base_256() {
        assert_eq!(tar_number(b"00000001750\0"), Some(0o1750));
        assert_eq!(tar_number(b"  1750 \0"), Some(0o1750));
        assert_eq!(tar_number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(tar_number(b"zz"), None);
        assert_eq!(tar_number(b"\0\0\0"), None);
    }
}
