//! What the broker keeps between runs: instance lookups ([`lookup`]), keys pushed lately
//! ([`pushes`]), and the one safe way to read and write the user's private files
//! ([`private_file`]: random temporary names, `O_EXCL|O_NOFOLLOW`, 0600, fsync, rename,
//! directories checked for owner and mode).

pub(crate) mod lookup;
pub(crate) mod private_file;
pub(crate) mod pushes;

/// The present time in Unix seconds, the clock every cache entry is stamped with (the caches
/// themselves take it as an argument).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
