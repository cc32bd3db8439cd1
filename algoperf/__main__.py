"""`python -m algoperf` is the `algoperf` command."""

from algoperf.cli import main

main()
