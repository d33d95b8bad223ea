//! The forms of the lines pg_restore and psql print.

use std::io::BufRead;

use super::{MAX_LINE, ToolError};

/// `could not execute query: ERROR:  relation "x" already exists` -> the server's message.
pub(super) fn server_error(msg: &str) -> ToolError {
    let message = match msg.find("ERROR:  ") {
        Some(pos) => {
            let prefix = msg[..pos].trim_end_matches([':', ' ']);
            let server = &msg[pos + 8..];
            if prefix.is_empty() || prefix == "could not execute query" {
                server.to_string()
            } else {
                format!("{prefix}: {server}")
            }
        }
        None => msg.to_string(),
    };
    ToolError { raw: msg.to_string(), message, ..Default::default() }
}

/// `217; 1259 16407 TABLE notes postgres` -> `TOC entry 217: TABLE notes postgres`.
pub(super) fn describe_toc_context(ctx: &str) -> String {
    match ctx.split_once("; ") {
        Some((id, rest)) => {
            let what: Vec<&str> = rest.split_whitespace().skip(2).collect();
            format!("TOC entry {id}: {}", what.join(" "))
        }
        None => format!("TOC entry {ctx}"),
    }
}

/// `<stdin>:12: ERROR:  42P01: ...` -> (12, "ERROR", "42P01: ...").
pub(super) fn psql_location(rest: &str) -> Option<(u64, &str, &str)> {
    // The file name is "<stdin>" here, but split from the right of the line number.
    let (before, after) = rest.split_once(": ")?;
    let (_, lineno) = before.rsplit_once(':')?;
    let lineno = lineno.parse().ok()?;
    let (severity, text) = after.split_once(":  ").or_else(|| after.split_once(": "))?;
    if severity.is_empty() || severity.contains(' ') {
        return None;
    }
    Some((lineno, severity, text))
}

/// `42P01: relation ...` -> (Some("42P01"), "relation ...").
pub(super) fn sqlstate_prefix(text: &str) -> (Option<&str>, &str) {
    let b = text.as_bytes();
    if b.len() > 7
        && b[5] == b':'
        && b[6] == b' '
        && b[..5].iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    {
        (Some(&text[..5]), &text[7..])
    } else {
        (None, text)
    }
}

pub(super) fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"')
}

/// `shop.items` -> (Some("shop"), "items").
pub(super) fn split_qualified(name: &str) -> (Option<&str>, &str) {
    match name.split_once('.') {
        Some((s, n)) if !s.is_empty() => (Some(s), n),
        _ => (None, name),
    }
}

/// Reads one line into `out`, keeping at most [`MAX_LINE`] bytes of it.
pub(super) fn read_capped_line<R: BufRead>(r: &mut R, out: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let (done, used) = {
            let buf = match r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                return Ok(total);
            }
            match memchr::memchr(b'\n', buf) {
                Some(i) => {
                    let room = MAX_LINE.saturating_sub(out.len());
                    out.extend_from_slice(&buf[..(i + 1).min(room)]);
                    (true, i + 1)
                }
                None => {
                    let room = MAX_LINE.saturating_sub(out.len());
                    out.extend_from_slice(&buf[..buf.len().min(room)]);
                    (false, buf.len())
                }
            }
        };
        r.consume(used);
        total += used;
        if done {
            return Ok(total);
        }
    }
}
