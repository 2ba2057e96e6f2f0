"""What the commands do, as functions: `runs` plans a run of a suite and carries it out, `boards` ranks stored
rows. The command line parses, calls one of these and prints; a notebook or a script calls the same functions.
Diagnostics go to a `Notify` callable, data comes back as values."""
