"""Planning: a suite file read, checked against the catalog of extensions, and expanded into cells."""
