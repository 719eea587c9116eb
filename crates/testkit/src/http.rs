//! A tiny HTTP server on 127.0.0.1 for downloader tests (owned by the fetch-data work).
