//! MISP event JSON and MISP feed directories: import and export.
