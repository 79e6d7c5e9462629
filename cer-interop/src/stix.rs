//! STIX 2.1 bundles: import and export.
