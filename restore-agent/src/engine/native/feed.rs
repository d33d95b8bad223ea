//! The reading side of the native engine: splits the script on a blocking
//! thread, sends its events, and ends with the verdict on the stream as a
//! whole (the caller's check, then the trailer).

use std::io::BufRead;

use tokio::sync::mpsc;

use super::Msg;
use crate::dump::DumpError;
use crate::dump::trailer::Trailer;
use crate::sql::Splitter;

/// Reads the script and feeds the engine, ending with exactly one
/// [`Msg::End`] unless the engine stopped listening.
pub(super) fn feed(
    reader: Box<dyn BufRead + Send>,
    tx: mpsc::Sender<Msg>,
    cluster: bool,
    mut finish_check: impl FnMut() -> Result<(), DumpError>,
) {
    let mut splitter = Splitter::new(reader);
    let mut trailer = Trailer::default();
    loop {
        match splitter.next_event() {
            Ok(Some(ev)) => {
                trailer.see(&ev);
                if tx.blocking_send(Msg::Event(ev)).is_err() {
                    return; // the engine stopped; it has its own error to report
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = tx.blocking_send(Msg::End(Err(e.into())));
                return;
            }
        }
    }
    let verdict = finish_check().and_then(|()| trailer.verdict(cluster));
    let _ = tx.blocking_send(Msg::End(verdict));
}
