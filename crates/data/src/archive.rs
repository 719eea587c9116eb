//! Safe streaming extraction of `.tar.gz` archives (owned by the fetch-data work).
