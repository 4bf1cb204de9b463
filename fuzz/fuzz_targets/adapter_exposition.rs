//! An inference server's `/metrics` page through an adapter (the first byte picks vLLM,
//! llama.cpp, SGLang or TGI), fed in chunks as it arrives.
#![no_main]
use cellwatch_exporter::adapter::{PageFilter, Server, normalize_filtered};
use cellwatch_exporter::proxy::ModelLabels;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let server = [Server::Vllm, Server::LlamaCpp, Server::Sglang, Server::Tgi][pick as usize % 4];
    let mut filter = PageFilter::new(server);
    // Chunks of a size the second byte picks, as a body arrives.
    let size = rest.first().map_or(1, |b| *b as usize % 64 + 1);
    for chunk in rest.chunks(size) {
        filter.push(chunk);
    }
    let models = ModelLabels::new(20);
    let _ = normalize_filtered(server, filter.finish(), "default-model", &models);
});
