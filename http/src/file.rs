//! Reading files named by a user: regular files of bounded size only, so that a path such as
//! `/dev/zero`, a FIFO or a directory is refused by its type without being read, and a huge file
//! by its size. Used for every file a configuration names (the engine's config, OpenSLO
//! documents, secret files, CA bundles) and for `--web.config.file` and its certificates.

use std::path::Path;

fn file_kind(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

fn mib(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{} MiB", n >> 20)
    } else {
        format!("{} KiB", n >> 10)
    }
}

/// Reads a regular file of at most `limit` bytes. Anything else (a directory, a FIFO, a device
/// such as /dev/zero) is refused by its type before it is opened, and a file that grows past the
/// limit is not read further: the error says which limit.
pub fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let refuse = |t: &std::fs::FileType| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: only a regular file is read", file_kind(t)),
        )
    };
    let too_big = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than the limit of {}", mib(limit)),
        )
    };
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(refuse(&meta.file_type()));
    }
    if meta.len() > limit {
        return Err(too_big());
    }
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Should a FIFO have replaced the file since the look above, opening it must not wait
        // for a writer (on a regular file the flag changes nothing).
        open.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = open.open(path)?;
    // The path may have been replaced between the two looks.
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refuse(&meta.file_type()));
    }
    let mut buf = Vec::with_capacity(meta.len().min(limit) as usize);
    file.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(buf)
}

/// [`read_bounded`] as UTF-8 text, without a leading byte-order mark.
pub fn read_text(path: &Path, limit: u64) -> std::io::Result<String> {
    let bytes = read_bounded(path, limit)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}
