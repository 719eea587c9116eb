//! Archive fixtures: tar.gz files, including malicious ones (owned by the fetch-data work).
