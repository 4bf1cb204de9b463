//! The metering proxy's reading of a request body (its model) and of a response (SSE, NDJSON
//! or JSON, for each API), fed in chunks as it arrives; the fast reading of a whole JSON
//! response, whenever it answers, answers as the general one.
#![no_main]
use std::time::Duration;

use cellwatch_exporter::proxy::meter::{Api, Format, Meter, request_info, whole_readings_agree};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let _ = request_info(rest);
    let api = [
        Api::ChatCompletions,
        Api::Completions,
        Api::Responses,
        Api::Messages,
        Api::OllamaChat,
        Api::OllamaGenerate,
    ][pick as usize % 6];
    let format = [Format::Sse, Format::Ndjson, Format::Json][(pick as usize / 6) % 3];
    let size = (pick as usize / 18) % 13 + 1;
    let mut m = Meter::new(api, format);
    for (i, chunk) in rest.chunks(size).enumerate() {
        m.feed(chunk, Duration::from_millis(i as u64 * 7));
    }
    let _ = m.content_chunks();
    let _ = m.finish();
    // The fast reading of a whole response answers only as the general (serde) one does.
    assert!(whole_readings_agree(api, rest));
});
