//! Loading: read the file, parse the YAML, validate.

use std::path::Path;

use cellwatch_http::file::read_text;

use super::error::{ConfigError, MAX_CONFIG_BYTES};
use super::locate::{prepare, syntax_error};
use super::raw::RawConfig;
use super::types::Config;
use super::validate::validate;

/// Reads and validates a configuration file (a regular file of at most [`MAX_CONFIG_BYTES`]).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read_text(path, MAX_CONFIG_BYTES).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and validates configuration text (`path` is for messages and relative paths).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let text = prepare(text, path)?;
    let de = yaml_serde::Deserializer::from_str(text);
    let raw: RawConfig =
        serde_path_to_error::deserialize(de).map_err(|e| syntax_error(path, text, 1, "", e))?;
    validate(raw, text, path)
}
