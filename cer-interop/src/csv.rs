//! CSV with a header row, and plain lists of values: import and export.
