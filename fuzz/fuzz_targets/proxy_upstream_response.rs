//! The proxy's reading of an upstream's answer (status line, headers, the body by its framing:
//! a length, chunks with extensions and trailers, or until the close), fed in pieces as reads
//! would give them: never a panic, and the same answer (or error) whatever the pieces.
#![no_main]
use cellwatch_exporter::proxy::read_upstream_response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let head_request = pick & 1 == 1;
    let piece = usize::from(pick >> 1) % 17 + 1;
    let whole = read_upstream_response(rest, rest.len(), head_request);
    let pieces = read_upstream_response(rest, piece, head_request);
    assert_eq!(whole, pieces, "pieces of {piece}");
});
