"""`mmbench compare`: two result sets, matched by configuration, judged figure by figure for a CI gate."""
