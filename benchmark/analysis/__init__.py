"""Analysis of stored results: leaderboards, confidence intervals, TPME and library-version stacks."""
