//! MD5 and SHA-256 of files and streams (owned by the fetch-data work).
